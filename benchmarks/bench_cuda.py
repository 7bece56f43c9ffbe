"""The optional CUDA path of Linear CorEx, against the CPU path in the same run, on one planted matrix.

Only for a machine with a GPU (the project never needs one). It fits the same standardized planted matrix
(`n` rows, `p` properties in `m` planted groups plus noise) with `device="cpu"` and `device="cuda"`, then reports
each fit's time, its total-correlation bound, the AMI of its property assignments to the planted groups, and
the ratio of the two times; parallel analysis (`core/factor_count.py`) is run on the same matrix for the count.

    python benchmarks/bench_cuda.py [--rows 20000 --properties 2000 --factors 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from instructlf_assets.core.corex import LinearCorex
from instructlf_assets.core.factor_count import parallel_analysis


def planted(rows: int, properties: int, factors: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.arange(properties) % factors
    hidden = rng.normal(size=(rows, factors)).astype(np.float32)
    noise = rng.normal(size=(rows, properties)).astype(np.float32)
    return hidden[:, groups] + 1.5 * noise, groups


def fit(data: np.ndarray, groups: np.ndarray, factors: int, device: str) -> dict[str, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    model = LinearCorex(factors, random_state=0, device=device).fit(data)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    ami = adjusted_mutual_info_score(groups, model.assignments_)
    return {"seconds": round(seconds, 2), "tc": round(float(model.tc_), 3), "ami_planted": round(float(ami), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--properties", type=int, default=2_000)
    parser.add_argument("--factors", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data, groups = planted(args.rows, args.properties, args.factors)
    result: dict[str, object] = {
        "benchmark": "bench_cuda.py",
        "shape": [args.rows, args.properties, args.factors],
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpus": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    started = time.perf_counter()
    result["parallel_analysis"] = {"n_factors": parallel_analysis(data).n_factors, "planted": args.factors}
    result["parallel_analysis"]["seconds"] = round(time.perf_counter() - started, 2)
    result["cpu"] = fit(data, groups, args.factors, "cpu")
    if torch.cuda.is_available():
        fit(data[:2000], groups, args.factors, "cuda")  # warm-up: CUDA context and kernels, not timed
        result["cuda"] = fit(data, groups, args.factors, "cuda")
        result["cuda_time_ratio_vs_cpu"] = round(result["cuda"]["seconds"] / result["cpu"]["seconds"], 3)
        result["tc_ratio_cuda_vs_cpu"] = round(result["cuda"]["tc"] / result["cpu"]["tc"], 6)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
