"""Does scoring new documents go at the speed of one encoder pass over them? Measured, not assumed.

Times, in one run and interleaved (medians of `--repeats`), on the same N generated demo reviews, the same
encoder and the same vocabulary:

  (a) transform     `FittedModel.transform`: property scores, factor scores and top properties per document
  (b) score_matrix  the `property_scores` stage's own work, `core.scoring.score_matrix` (one encoder pass)

and writes the ratio (a)/(b) with provenance to `benchmarks/results/score_new_documents.json`.

The model is fitted here, not read from a dataset: the packaged base MiniLM as the encoder, `--properties`
demo property phrases as the vocabulary, and Linear CorEx fitted on `--train` other demo reviews. Both sides
load the encoder before timing starts; (a) is the warm model a notebook holds, so the vocabulary's embeddings
are already cached, while (b) encodes the vocabulary on every call, as the stage does.

    python benchmarks/bench_score.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench import property_texts

from instructlf_assets.core.demo_corpus import generate_demo_corpus
from instructlf_assets.core.embedding import base_model_path, encode, load_encoder
from instructlf_assets.core.factors import FactorOptions, fit_factors
from instructlf_assets.core.scoring import score_matrix
from instructlf_assets.core.transform import FittedModel

RESULT = Path(__file__).resolve().parent / "results" / "score_new_documents.json"
BATCH_SIZE = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="new documents scored")
    parser.add_argument("--properties", type=int, default=150, help="vocabulary size")
    parser.add_argument("--train", type=int, default=300, help="documents the factor model is fitted on")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    encoder_dir = base_model_path()
    encoder = load_encoder(str(encoder_dir), "cpu")

    def embed(texts):
        return encode(encoder, texts, BATCH_SIZE)

    properties = property_texts(args.properties)
    vocabulary = pd.DataFrame({"property_id": [f"p{i:04d}" for i in range(len(properties))], "text": properties})
    train = generate_demo_corpus(args.train, seed=1)
    train_scores = score_matrix(embed, train["text"].tolist(), properties)
    factors = fit_factors(
        train_scores, train_scores, train["doc_id"].to_numpy(), vocabulary, FactorOptions(max_iter=300, device="cpu")
    )
    model = FittedModel(encoder_dir, vocabulary, factors, dataset="bench", batch_size=BATCH_SIZE, device="cpu")
    documents = generate_demo_corpus(args.n, seed=2)["text"].tolist()
    model.transform(documents[:8])  # loads the model's encoder and caches the vocabulary's embeddings
    score_matrix(embed, documents[:8], properties)

    transform_s, matrix_s = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        scored = model.transform(documents)
        transform_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        matrix = score_matrix(embed, documents, properties)
        matrix_s.append(time.perf_counter() - started)
    factor_ids = model.factor_ids
    agree = np.allclose(scored[factor_ids].to_numpy(), model.factor_scores(matrix), atol=1e-4)
    a, b = statistics.median(transform_s), statistics.median(matrix_s)
    result = {
        "benchmark": "score_new_documents",
        "n_documents": args.n,
        "vocabulary_size": len(properties),
        "n_factors": len(factor_ids),
        "repeats": args.repeats,
        "transform_seconds": round(a, 3),
        "score_matrix_seconds": round(b, 3),
        "ratio_transform_over_score_matrix": round(a / b, 3),
        "transform_docs_per_second": round(args.n / a, 1),
        "transform_seconds_each": [round(s, 3) for s in transform_s],
        "score_matrix_seconds_each": [round(s, 3) for s in matrix_s],
        "factor_scores_match_score_matrix_path": bool(agree),
        "model": f"all-MiniLM-L6-v2 (packaged, {encoder_dir.name}), batch size {BATCH_SIZE}, cpu",
        "torch_threads": _torch_threads(),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
