"""Offline proposer strategies on Bills, outside Dagster: clause proposals vs a corpus-level candidate vocabulary.

For each strategy the vocabulary is built as the pipeline builds it (proposals for train and valid bills, then
`core/dedup.build_vocabulary` on the train bills' proposals), the documents x properties matrix is scored with
the UNTUNED base encoder (fine-tuning is out of scope here, so every row reads the same encoder), CorEx is fitted
on the train rows, and the held-out Bills protocol (`core/tasks.evaluate_classification`: probes fitted on
train + valid, scored on the test bills) reports factors, property scores and the TF-IDF, LDA and embedding
baselines on the same split. Every text is encoded once and reused across configurations.

    INSTRUCTLF_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/bench_vocabulary.py \
        [--factors 20 50] [--seed 0] [--json benchmarks/results/vocabulary_bills.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from instructlf_assets.core.candidate_vocabulary import (
    CandidateOptions,
    build_candidate_vocabulary,
    propose_candidates,
)
from instructlf_assets.core.catalogue import DATA_DIR_ENV, TaskSpec, get_dataset
from instructlf_assets.core.corpus import load_documents
from instructlf_assets.core.dedup import DedupOptions, build_vocabulary
from instructlf_assets.core.embedding import base_model_path, encode, load_encoder
from instructlf_assets.core.factors import FactorOptions, fit_factors
from instructlf_assets.core.offline_proposer import ExtractiveOptions, ScoredPhrase, propose_extractive
from instructlf_assets.core.representations import fit_baselines
from instructlf_assets.core.scoring import score_matrix
from instructlf_assets.core.tasks import TaskInputs, evaluate_classification

REPO = Path(__file__).resolve().parents[1]
HEADLINE = "tree_balanced_accuracy"
BASELINES = ("tfidf", "lda", "embeddings")
CANDIDATES = {
    "candidates_k5": CandidateOptions(per_document=5),
    "candidates_k15": CandidateOptions(per_document=15),
    "candidates_k15_goal_only": CandidateOptions(per_document=15, goal_weight=1.0),
}


class CachedEmbedder:
    """The base encoder with a text -> vector cache, so each distinct text is encoded once per run."""

    def __init__(self) -> None:
        self.model = load_encoder(str(base_model_path()))
        self.vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            self.vectors.update(zip(missing, encode(self.model, missing), strict=True))
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])


def long_table(doc_ids: Sequence[str], proposals: list[list[ScoredPhrase]]) -> pd.DataFrame:
    rows = [{"doc_id": d, "property": p.text} for d, phrases in zip(doc_ids, proposals, strict=True) for p in phrases]
    return pd.DataFrame(rows, columns=["doc_id", "property"])


def vocabularies(documents: pd.DataFrame, goal: str, embed: CachedEmbedder, per_document: int) -> dict[str, dict]:
    proposed = documents[documents["split"].isin(["train", "valid"])]
    train = proposed["split"].eq("train").to_numpy()
    texts, ids = proposed["text"].tolist(), proposed["doc_id"].tolist()
    out = {}
    started = time.perf_counter()
    clauses = propose_extractive(texts, goal, embed, ExtractiveOptions(top_k=per_document))
    out["clauses"] = {
        "proposals": long_table(ids, clauses),
        "vocabulary_seconds": time.perf_counter() - started,
        "extra": {},
    }
    vectors = embed(texts)
    train_texts = [t for t, keep in zip(texts, train, strict=True) if keep]
    for name, options in CANDIDATES.items():
        started = time.perf_counter()
        vocabulary = build_candidate_vocabulary(train_texts, goal, embed, options, train_vectors=vectors[train])
        proposals = propose_candidates(texts, vocabulary, embed, options, doc_vectors=vectors)
        out[name] = {
            "proposals": long_table(ids, proposals),
            "vocabulary_seconds": time.perf_counter() - started,
            "extra": {
                "options": dataclasses.asdict(options),
                "candidates_in_band": vocabulary.n_candidates,
                "candidates_kept": len(vocabulary.phrases),
                "top_candidates": vocabulary.phrases[:25],
            },
        }
    train_ids = set(proposed.loc[train, "doc_id"])
    for entry in out.values():
        table = entry.pop("proposals")
        started = time.perf_counter()
        built = build_vocabulary(table[table["doc_id"].isin(train_ids)], embed, DedupOptions())
        entry["vocabulary_seconds"] = round(entry["vocabulary_seconds"] + time.perf_counter() - started, 1)
        entry["vocabulary"] = built
        entry["proposals_per_document"] = round(len(table) / max(len(proposed), 1), 2)
        entry["documents_without_proposal"] = int(len(proposed) - table["doc_id"].nunique())
        entry["distinct_proposals"] = built.n_normalised
        entry["pruned_below_support"] = built.n_pruned
    return out


def headline(metrics, method: str, metric: str = HEADLINE) -> dict[str, float]:
    for m in metrics:
        if m.method == method and m.metric == metric and m.split == "topic":
            return {"value": round(m.value, 4), "stderr": round(m.stderr, 4), "n": m.n}
    raise KeyError(method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N bills only: a smoke run, not a result")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/vocabulary_bills.json")
    args = parser.parse_args()
    started = time.perf_counter()
    spec = get_dataset("bills")
    data_dir = Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else None
    documents = load_documents(spec, data_dir).documents.head(args.limit).reset_index(drop=True)
    embed = CachedEmbedder()
    texts = documents["text"].tolist()
    doc_vectors = embed(texts)
    train = documents["split"].eq("train").to_numpy()
    built = vocabularies(documents, spec.goal, embed, spec.prompt.properties_per_document)
    task = TaskSpec(type="classification", targets=("topic",))
    rows = []
    for strategy, entry in built.items():
        vocabulary = entry.pop("vocabulary")
        properties = vocabulary.table
        if len(properties) < 2:
            rows.append({"strategy": strategy, "vocabulary_size": len(properties), "error": "fewer than 2 properties"})
            continue
        scores = score_matrix(embed, texts, properties["text"].tolist())
        for n_factors in args.factors:
            fit_started = time.perf_counter()
            options = FactorOptions(n_factors=n_factors, seed=args.seed, device="cpu")
            model = fit_factors(scores[train], scores, documents["doc_id"].to_numpy(), properties, options)
            baselines = fit_baselines(texts, train, doc_vectors, int(model.summary["n_factors"]), args.seed)
            metrics = evaluate_classification(TaskInputs(documents, model, scores, baselines), task, args.seed)
            baselines = {b: headline(metrics, b) for b in BASELINES}
            best = max(baselines, key=lambda b: baselines[b]["value"])
            rows.append(
                {
                    "strategy": strategy,
                    "n_factors_requested": n_factors,
                    "vocabulary_size": len(properties),
                    "factors": int(model.summary["n_factors"]),
                    "factors_note": model.summary["note"],
                    "factor_tree": headline(metrics, "factors"),
                    "property_scores_tree": headline(metrics, "property_scores"),
                    "baselines_tree": baselines,
                    "best_baseline": best,
                    "logreg": {
                        method: headline(metrics, method, "logreg_balanced_accuracy")["value"]
                        for method in ("factors", "property_scores", *BASELINES)
                    },
                    "top_factors": model.factors["name"].head(8).tolist(),
                    "fit_and_evaluate_s": round(time.perf_counter() - fit_started, 1),
                    **{k: v for k, v in entry.items() if k != "extra"},
                    **entry["extra"],
                }
            )
            print(json.dumps({k: rows[-1][k] for k in ("strategy", "vocabulary_size", "factors", "factor_tree")}))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {
        "benchmark": "offline proposer strategies on Bills (issue 15, directions 1-2)",
        "commit": commit,
        "seed": args.seed,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "encoder": "untuned base all-MiniLM-L6-v2 (no compatibility fine-tuning)",
        "protocol": "held-out: probes fitted on train+valid bills, scored on test bills; label topic; "
        f"{HEADLINE} with bootstrap stderr (core/tasks.evaluate_classification)",
        "split_sizes": documents["split"].value_counts().to_dict(),
        "settings": {
            "goal": spec.goal,
            "properties_per_document": spec.prompt.properties_per_document,
            "dedup": dataclasses.asdict(DedupOptions()),
            "clauses": dataclasses.asdict(ExtractiveOptions(top_k=spec.prompt.properties_per_document)),
            "n_factors": args.factors,
        },
        "timing_note": "vocabulary_seconds: proposals + dedup, documents already encoded (shared by every row)",
        "total_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.json} in {result['total_seconds']} s")


if __name__ == "__main__":
    main()
