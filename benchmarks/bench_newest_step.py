"""Which part of an ALFWorld state should propose its properties, and how many pairs should train the head?

Reads a finished `instructlf run alfworld` (its documents, base embeddings, property vocabulary and factor
count) and, for each proposal window and pair count, re-derives only what they change: which vocabulary entries
each training state proposes (the candidates its last N lines state, mapped through the vocabulary's merged
variants, the 15 most similar to the state kept, as the proposer does), the projection head trained on those
pairs, the property scores, CorEx with the run's number of factors, and next-action accuracy from the nearest
training state, by the pipeline's own `fit_factors` and `evaluate_next_action`. Everything else is the run's
own, so rows differ in the window and the pair count alone.

The vocabulary is the run's, pruned by the run's own proposals: to compare windows without favouring one, scan a
run that proposed from whole states (the JSON records the run's setting). Choices are made on the `valid` split
(whole held-out training games); `valid_seen` is printed beside it and decides nothing. The shipped setting is
then measured end to end by `bench_paper_tasks.py`.

    INSTRUCTLF_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/bench_newest_step.py \
        --home $DAGSTER_HOME_OF_A_RUN [--windows 0 1 2 3 4] [--pairs 5000 50000] [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_tasks import REPO, latest_metadata, provenance

sys.path.insert(0, str(REPO))
from instructlf_assets.core.candidate_vocabulary import last_lines, phrase_ngrams
from instructlf_assets.core.encoder_training import (
    TrainingOptions,
    projection_head,
    through_head,
    train_projection_head,
)
from instructlf_assets.core.factors import FactorOptions, fit_factors
from instructlf_assets.core.protocols import next_action_metrics
from instructlf_assets.core.representations import standardised
from instructlf_assets.core.tasks import TaskInputs, evaluate_next_action

DATASET = "alfworld"


def load_run(home: Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, int]:
    """The run's documents, base embeddings (the embeddings baseline), vocabulary and factor count."""
    root = home / "instructlf"
    documents = pd.read_parquet(root / "raw_documents" / DATASET / "table.parquet")
    baselines = root / "baseline_representations" / DATASET
    rows = pd.read_parquet(baselines / "rows.parquet")
    if not np.array_equal(rows["doc_id"].to_numpy(), documents["doc_id"].to_numpy()):
        raise SystemExit(f"{baselines}: rows are not the raw documents' order")
    vectors = np.load(baselines / "embeddings.npy").astype(np.float32)
    vocabulary = pd.read_parquet(root / "property_vocabulary" / DATASET / "table.parquet")
    summary = json.loads((root / "latent_factors" / DATASET / "summary.json").read_text())
    return documents, vectors, vocabulary, int(summary["n_factors"])


def window_pairs(
    documents: pd.DataFrame,
    vectors: np.ndarray,
    vocabulary: pd.DataFrame,
    phrase_vectors: np.ndarray,
    window: int | None,
    per_document: int = 15,
) -> tuple[pd.DataFrame, float]:
    """(anchor = state text, positive = property text) pairs: the entries each training state's window states,
    most similar to the state first, at most `per_document`; and the share of training states that propose
    nothing."""
    entry = {variant: j for j, variants in enumerate(vocabulary["variants"]) for variant in variants}
    texts, properties = documents["text"].to_numpy(), vocabulary["text"].to_numpy()
    train_rows = np.flatnonzero((documents["split"] == "train").to_numpy())
    anchors, positives, empty = [], [], 0
    for i in train_rows:
        stated = np.array(sorted({entry[g] for g in phrase_ngrams(last_lines(texts[i], window)) if g in entry}),
                          dtype=int)  # fmt: skip
        empty += len(stated) == 0
        kept = stated[np.argsort(-(phrase_vectors[stated] @ vectors[i]), kind="stable")[:per_document]]
        anchors.extend([texts[i]] * len(kept))
        positives.extend(properties[kept])
    return pd.DataFrame({"anchor": anchors, "positive": positives}), empty / max(len(train_rows), 1)


def scan(
    documents: pd.DataFrame,
    vocabulary: pd.DataFrame,
    pairs: pd.DataFrame,
    embed: Callable[[list[str]], np.ndarray],
    n_factors: int,
    pairs_limit: int,
    seed: int,
) -> dict:
    """One (window's pairs, pair count, seed): the pipeline's own head, factor fit and next-action evaluation."""
    started = time.perf_counter()
    model = _base_model()
    train_projection_head(model, pairs, TrainingOptions(strategy="projection_head", seed=seed,
                                                        head_max_train_pairs=pairs_limit), embed)  # fmt: skip
    head = through_head(embed, *projection_head(model))
    scores = head(documents["text"].tolist()) @ head(vocabulary["text"].tolist()).T
    train = (documents["split"] == "train").to_numpy()
    options = FactorOptions(n_factors=n_factors, seed=seed)
    factors = fit_factors(scores[train], scores, documents["doc_id"].to_numpy(), vocabulary, options)
    result: dict[str, object] = {"head_max_train_pairs": pairs_limit, "seed": seed, "n_pairs": len(pairs)}
    for metric in evaluate_next_action(TaskInputs(documents, factors, scores, {}), "action", seed):
        result[f"{metric.method}/{metric.split}"] = metric.value
        result[f"{metric.method}/{metric.split}/se"] = metric.stderr
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def supervised_ceiling(documents: pd.DataFrame, vectors: np.ndarray, dims: int = 64) -> dict:
    """Not a method, a bound: Fisher LDA of the base embeddings on the training states' own actions, then the same
    1-NN. It says how much next-action information a linear map of these embeddings (which the property scores
    are, under a projection head) can hold at all."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from instructlf_assets.core.paper_datasets import normalise_action

    actions = documents["action"].to_numpy()
    fit = (documents["split"] == "train").to_numpy()
    reference = documents["split"].isin(["train", "valid"]).to_numpy()
    labels = np.array([normalise_action(a) for a in actions[fit]])
    lda = LinearDiscriminantAnalysis(n_components=dims, solver="eigen", shrinkage=0.01).fit(vectors[fit], labels)
    x = standardised(lda.transform(vectors).astype(np.float32), reference)
    result = {"ceiling": f"supervised LDA, {dims} dimensions"}
    valid = (documents["split"] == "valid").to_numpy()
    seen = (documents["eval_split"] == "valid_seen").to_numpy() & ~reference
    for split, pool, rows in (("valid", fit, valid), ("valid_seen", reference, seen)):
        result[split] = next_action_metrics("ceiling", x[pool], actions[pool], x[rows], actions[rows], split).value
    return result


def _base_model():
    from sentence_transformers import SentenceTransformer

    from instructlf_assets.core.embedding import base_model_path

    return SentenceTransformer(str(base_model_path()), device="cpu", local_files_only=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="DAGSTER_HOME of a finished `instructlf run alfworld`")
    parser.add_argument("--windows", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="0: the whole state")
    parser.add_argument("--pairs", nargs="+", type=int, default=[TrainingOptions().head_max_train_pairs])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "newest_step.json"))
    parser.add_argument("--ceiling", action="store_true", help="only the supervised bound on the run's embeddings")
    args = parser.parse_args()
    if any(window < 0 for window in args.windows):
        parser.error("--windows: 0 (the whole state) or a positive number of lines")
    home = str(Path(args.home).resolve())
    documents, vectors, vocabulary, n_factors = load_run(Path(home))
    if args.ceiling:
        print(json.dumps({**supervised_ceiling(documents, vectors), "run_home": home}))
        return 0
    run_settings = latest_metadata(home, "property_proposals", DATASET, ("settings",)).get("settings", {})
    phrase_vectors = _base_model().encode(vocabulary["text"].tolist(), normalize_embeddings=True)
    made = {
        **provenance(dict(os.environ)),
        "run_home": home,
        "run_candidates": (run_settings.get("prompt") or {}).get("candidates"),
        "n_factors": n_factors,
        "n_properties": len(vocabulary),
        "asset_config": f"the run's vocabulary and factor count; windows {args.windows}, head pairs {args.pairs}, "
        "head 20 epochs, CorEx max_iter 1000",
    }
    texts = documents["text"].tolist()
    lookup = {**dict(zip(texts, vectors, strict=True)), **dict(zip(vocabulary["text"], phrase_vectors, strict=True))}

    def embed(batch: list[str]) -> np.ndarray:  # the run's base embeddings: no encoder pass
        return np.stack([lookup[t] for t in batch]).astype(np.float32)

    results = []
    for window in args.windows:
        pairs, empty_share = window_pairs(documents, vectors, vocabulary, phrase_vectors, window or None)
        for seed in args.seeds:
            for pairs_limit in args.pairs:
                result = {"window": window, "share_of_states_proposing_nothing": round(empty_share, 4),
                          **scan(documents, vocabulary, pairs, embed, n_factors, pairs_limit, seed)}  # fmt: skip
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
                payload = {"benchmark": "bench_newest_step.py", "provenance": made, "results": results}
                Path(args.json).write_text(json.dumps(payload, indent=1))
    print(table(results))
    return 0


def table(results: list[dict]) -> str:
    """Means over seeds per (window, pair count); the valid columns are the ones that choose."""
    lines = [
        "| proposals from | head pairs | factors valid | property scores valid | factors valid_seen | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for window, limit in sorted({(r["window"], r["head_max_train_pairs"]) for r in results}):
        rows = [r for r in results if (r["window"], r["head_max_train_pairs"]) == (window, limit)]
        label = "the whole state" if window == 0 else f"the last {window} line{'s' if window > 1 else ''}"
        keys = ("factors/valid", "property_scores/valid", "factors/valid_seen")
        cells = " | ".join(f"{np.mean([r[k] for r in rows]):.3f}" for k in keys)
        lines.append(f"| {label} | {limit:,} | {cells} | {len({r['seed'] for r in rows})} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
