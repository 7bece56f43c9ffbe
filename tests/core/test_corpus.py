import pandas as pd
import pytest

from instructlf_assets.core.catalogue import DatasetSpec, SplitRule
from instructlf_assets.core.corpus import assign_splits, corpus_fingerprint, load_documents
from instructlf_assets.core.errors import CorpusError


def spec(**corpus) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "reviews",
            "goal": "What matters?",
            "corpus": {"path": "reviews.csv", "id_field": "id", **corpus},
        }
    )


def write_csv(tmp_path, rows):
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)


def test_csv_corpus_loads_with_splits_and_labels(tmp_path):
    write_csv(tmp_path, [{"id": f"d{i}", "text": f"text {i}", "stars": i % 5} for i in range(50)])
    loaded = load_documents(spec(label_fields=["stars"]), tmp_path)
    assert list(loaded.documents.columns) == ["doc_id", "text", "split", "stars"]
    assert set(loaded.documents["split"]) <= {"train", "valid", "test"}
    assert loaded.documents["doc_id"].tolist()[:2] == ["d0", "d1"]


def test_missing_file_names_dataset_path_and_variable(tmp_path):
    with pytest.raises(
        CorpusError, match=r"dataset 'reviews': corpus file .*reviews.csv not found.*INSTRUCTLF_DATA_DIR"
    ):
        load_documents(spec(), tmp_path)


def test_relative_path_without_data_dir_says_which_variable(tmp_path):
    with pytest.raises(CorpusError, match=r"INSTRUCTLF_DATA_DIR is not set"):
        load_documents(spec(), None)


def test_missing_text_column_is_named(tmp_path):
    write_csv(tmp_path, [{"id": "a", "body": "x"}])
    with pytest.raises(CorpusError, match=r"no column\(s\) \['text'\]"):
        load_documents(spec(), tmp_path)


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "reviews.csv").write_text("id,text\n")
    with pytest.raises(CorpusError, match=r"has no documents"):
        load_documents(spec(), tmp_path)


def test_duplicate_ids_name_the_rows(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    with pytest.raises(CorpusError, match=r"field 'doc_id' has duplicates \['a'\] in rows \[1, 3\]"):
        load_documents(spec(), tmp_path)


def test_row_without_text_is_named(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "   "}])
    with pytest.raises(CorpusError, match=r"field 'text' is empty in 1 row\(s\), first rows \[2\]"):
        load_documents(spec(), tmp_path)


def test_long_texts_are_truncated_and_counted(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x" * 500}, {"id": "b", "text": "short"}])
    loaded = load_documents(spec().model_copy(update={"max_text_chars": 100}), tmp_path)
    assert loaded.n_truncated == 1 and loaded.documents["text"].str.len().max() == 100


def test_split_of_existing_documents_survives_an_append():
    rule = SplitRule(valid_fraction=0.2, test_fraction=0.2)
    before = assign_splits(pd.Series([f"d{i}" for i in range(200)]), rule)
    after = assign_splits(pd.Series([f"d{i}" for i in range(300)]), rule)
    assert (after[:200] == before).all()
    assert 0.1 < (before == "test").mean() < 0.3


def test_fingerprint_follows_file_bytes(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}])
    first = corpus_fingerprint(spec(), tmp_path)
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    assert corpus_fingerprint(spec(), tmp_path) != first
