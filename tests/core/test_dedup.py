import numpy as np
import pandas as pd

from instructlf_assets.core.dedup import DedupOptions, build_vocabulary, map_proposals


def proposals(rows):
    return pd.DataFrame(rows, columns=["doc_id", "property"])


def test_spellings_merge_and_most_supported_spelling_names_the_cluster(fake_embed):
    rows = [(f"d{i}", "The acting is superb.") for i in range(4)]
    rows += [("d9", "acting is SUPERB"), ("d8", "acting superb")]
    rows += [(f"e{i}", "music drowns the dialogue") for i in range(3)]
    vocab = build_vocabulary(proposals(rows), fake_embed, DedupOptions(merge_threshold=0.8, min_support=2))
    table = vocab.table.set_index("text")
    assert list(table.index) == ["acting is superb", "music drowns the dialogue"]
    assert table.loc["acting is superb", "support"] == 6
    assert "acting superb" in table.loc["acting is superb", "variants"]


def test_rare_properties_are_pruned_and_counted(fake_embed):
    rows = [("d1", "rare thing")] + [(f"d{i}", "common thing here") for i in range(3)]
    vocab = build_vocabulary(proposals(rows), fake_embed, DedupOptions(merge_threshold=0.95, min_support=2))
    assert vocab.table["text"].tolist() == ["common thing here"] and vocab.n_pruned == 1


def test_representatives_are_pairwise_below_threshold(fake_embed):
    rng = np.random.default_rng(0)
    words = ["plot", "cast", "music", "pacing", "jokes", "camera", "dull", "great", "slow", "loud"]
    rows = [(f"d{i}", " ".join(rng.choice(words, 3))) for i in range(600)]
    vocab = build_vocabulary(proposals(rows), fake_embed, DedupOptions(merge_threshold=0.7, min_support=1))
    vectors = fake_embed(vocab.table["text"].tolist())
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.7
    assert vocab.table["property_id"].is_unique


def test_map_proposals_attaches_property_ids(fake_embed):
    rows = [(f"d{i}", "acting is superb") for i in range(3)] + [("d1", "lonely")]
    frame = proposals(rows)
    vocab = build_vocabulary(frame, fake_embed, DedupOptions(min_support=2))
    mapped = map_proposals(frame, vocab)
    assert mapped["property_id"].iloc[0] == "p00000" and pd.isna(mapped["property_id"].iloc[-1])
