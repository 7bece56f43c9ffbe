"""Linear CorEx: ours (torch) against the `linearcorex` package (NumPy), same matrix, same factors, same run.

Both fits are scored under one objective (our exact Gaussian TC bound; linearcorex's W is converted from its
unit-variance convention), so the TC ratio compares solutions, not each library's own bookkeeping. Times are
reported as ratios because this machine is shared: absolute seconds move with the load, ratios much less.

    pip install -e ".[bench]"
    python benchmarks/bench_corex.py            # 2k x 500 (m=20) and 20k x 2000 (m=50)
    python benchmarks/bench_corex.py --quick    # 2k x 500 only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

import numpy as np

from instructlf_assets.core.corex import LinearCorex, total_correlation_bound


def planted_matrix(n_samples: int, n_variables: int, n_factors: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_factors, n_variables)
    hidden = rng.normal(size=(n_samples, n_factors))
    loadings = rng.uniform(0.3, 0.8, n_variables) * rng.choice([-1, 1], n_variables)
    data = hidden[:, groups] * loadings + rng.normal(size=(n_samples, n_variables)) * np.sqrt(1 - loadings**2)
    standardized = (data - data.mean(0)) / data.std(0)
    return standardized.astype(np.float32), groups


def fit_ours(data: np.ndarray, n_factors: int) -> tuple[float, np.ndarray, float]:
    started = time.perf_counter()
    model = LinearCorex(n_factors, random_state=0).fit(data)
    return time.perf_counter() - started, model.assignments_, total_correlation_bound(data, model.weights_)


def fit_linearcorex(data: np.ndarray, n_factors: int) -> tuple[float, np.ndarray, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a CUDA hint on import
        import linearcorex
    started = time.perf_counter()
    model = linearcorex.Corex(n_hidden=n_factors, seed=0).fit(data)
    seconds = time.perf_counter() - started
    return seconds, model.clusters(), total_correlation_bound(data, model.ws, convention="unit_variance")


def compare(n_samples: int, n_variables: int, n_factors: int) -> dict[str, float]:
    from sklearn.metrics import adjusted_mutual_info_score

    data, groups = planted_matrix(n_samples, n_variables, n_factors)
    ours_s, ours_assign, ours_tc = fit_ours(data, n_factors)
    theirs_s, theirs_assign, theirs_tc = fit_linearcorex(data, n_factors)
    return {
        "shape": f"{n_samples}x{n_variables}, m={n_factors}",
        "ours_s": round(ours_s, 2),
        "linearcorex_s": round(theirs_s, 2),
        "time_ratio": round(ours_s / theirs_s, 3),
        "ours_tc": round(ours_tc, 3),
        "linearcorex_tc": round(theirs_tc, 3),
        "tc_ratio": round(ours_tc / theirs_tc, 4),
        "ours_ami": round(adjusted_mutual_info_score(groups, ours_assign), 3),
        "linearcorex_ami": round(adjusted_mutual_info_score(groups, theirs_assign), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small matrix")
    args = parser.parse_args()
    sizes = [(2000, 500, 20)] if args.quick else [(2000, 500, 20), (20000, 2000, 50)]
    print(json.dumps([compare(*size) for size in sizes], indent=2))


if __name__ == "__main__":
    main()
