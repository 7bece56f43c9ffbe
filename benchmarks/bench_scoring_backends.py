"""Can a faster inference back end close the score matrix's gap to 10x on this CPU? Measured, not assumed.

`bench.py` finds batched scoring 2.4x faster than encoding one text at a time, against a 10x target. Batching
cannot reduce MiniLM's arithmetic per token, so the remaining levers are back ends that do less or cheaper
arithmetic. This script times, in one run and interleaved (medians of `--repeats`), on the same texts:

  loop         bench.py's peer: one text per encoder call, pairs compared in a Python loop, torch fp32
  torch        batched, torch fp32 (what the project ships)
  torch_int8   batched, torch dynamic int8 quantization of the Linear layers
  onnx         batched, ONNX Runtime fp32 with all graph optimizations (fused attention, GELU, LayerNorm)
  onnx_int8    batched, ONNX Runtime with per-channel dynamic int8 weights

Every batched back end builds its matrix through the project's `score_matrix`; only the encoder differs. It
reports each one's speedup over `loop` and how far its score matrix moves from torch fp32's (max and mean
absolute difference, mean per-document Spearman correlation, overlap of each document's top-10 properties).

    pip install -e ".[bench]" onnx onnxruntime
    python benchmarks/bench_scoring_backends.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench import naive_score_matrix, property_texts

from instructlf_assets.core.embedding import Embedder
from instructlf_assets.core.scoring import score_matrix

Build = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (documents, properties) -> score matrix
BATCH_SIZE = 64
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def batched(embed: Embedder) -> Build:
    return lambda documents, properties: score_matrix(embed, documents, properties)


def torch_backends() -> tuple[dict[str, Build], object]:
    import torch

    from instructlf_assets.core.embedding import base_model_path, encode, load_encoder

    model = load_encoder(str(base_model_path()), "cpu")
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # a copy
    embed: Embedder = lambda texts: encode(model, texts, BATCH_SIZE)  # noqa: E731
    backends: dict[str, Build] = {
        "loop": lambda documents, properties: naive_score_matrix(embed, documents, properties)[0],
        "torch": batched(embed),
        "torch_int8": batched(lambda texts: encode(quantized, texts, BATCH_SIZE)),
    }
    return backends, model


def export_onnx(model: object, directory: Path) -> tuple[Path, Path]:
    """The transformer without pooling, exported by torch's TorchScript exporter, and its int8 twin."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class LastHiddenState(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    fp32, int8 = directory / "model.onnx", directory / "model_int8.onnx"
    example = model.tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    torch.onnx.export(
        LastHiddenState(model[0].auto_model).eval(), tuple(example[name] for name in INPUTS), str(fp32),
        input_names=list(INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    return fp32, int8


def onnx_encoder(path: Path, model: object) -> Embedder:
    """Same tokenizer, same mean pooling and normalisation as sentence-transformers, longest texts batched first."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(texts: Sequence[str]) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            batch = model.tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=model.max_seq_length,
                return_tensors="np",
            )  # fmt: skip
            hidden = session.run(None, {name: batch[name].astype(np.int64) for name in INPUTS})[0]
            mask = batch["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors

    return encode


def score_drift(reference: np.ndarray, scores: np.ndarray, top: int = 10) -> dict[str, float]:
    from scipy.stats import spearmanr

    difference = np.abs(reference - scores)
    rank_correlation = [spearmanr(a, b)[0] for a, b in zip(reference, scores, strict=True)]
    top_reference = np.argsort(-reference, axis=1)[:, :top]
    top_scores = np.argsort(-scores, axis=1)[:, :top]
    overlap = [len(set(a) & set(b)) / top for a, b in zip(top_reference, top_scores, strict=True)]
    return {
        "max_abs_diff": round(float(difference.max()), 4),
        "mean_abs_diff": round(float(difference.mean()), 4),
        "mean_spearman": round(float(np.mean(rank_correlation)), 4),
        f"top{top}_overlap": round(float(np.mean(overlap)), 4),
    }


def run(n_documents: int, n_properties: int, repeats: int) -> dict[str, object]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from instructlf_assets.core.demo_corpus import generate_demo_corpus

    documents = generate_demo_corpus(n_documents, seed=0)["text"].tolist()
    properties = property_texts(n_properties)
    backends, model = torch_backends()
    with tempfile.TemporaryDirectory() as scratch:
        fp32, int8 = export_onnx(model, Path(scratch))
        backends["onnx"] = batched(onnx_encoder(fp32, model))
        backends["onnx_int8"] = batched(onnx_encoder(int8, model))
        for build in backends.values():
            build(documents[:16], properties[:4])  # warm-up: first-call costs belong to no one
        seconds: dict[str, list[float]] = {name: [] for name in backends}
        matrices: dict[str, np.ndarray] = {}
        for _ in range(repeats):
            for name, build in backends.items():  # interleaved, so load drift hits every back end alike
                started = time.perf_counter()
                matrices[name] = build(documents, properties)
                seconds[name].append(time.perf_counter() - started)
    loop_s = statistics.median(seconds["loop"])
    return {
        "n_documents": n_documents,
        "n_properties": n_properties,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "backends": {
            name: {
                "median_s": round(statistics.median(times), 3),
                "speedup_vs_loop": round(loop_s / statistics.median(times), 2),
                **score_drift(matrices["torch"], matrices[name]),
            }
            for name, times in seconds.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--properties", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), **run(args.documents, args.properties, args.repeats)}
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{results['n_documents']} documents x {results['n_properties']} properties, medians of {args.repeats}")
    for name, row in results["backends"].items():
        print(
            f"  {name:<11} {row['median_s']:7.2f} s  {row['speedup_vs_loop']:5.2f}x loop   "
            f"max|d| {row['max_abs_diff']:.3f}  mean|d| {row['mean_abs_diff']:.4f}  "
            f"spearman {row['mean_spearman']:.3f}  top10 {row['top10_overlap']:.2f}"
        )


if __name__ == "__main__":
    main()
