"""Encoder-training options on the demo, compared in one run: speed, held-out recall and downstream metrics.

The upstream assets (documents, proposals, vocabulary) are materialized once with `instructlf run demo`; then
each variant re-materializes `compatibility_encoder` and everything downstream of it in the same Dagster
instance, through the real job, so every variant is scored by exactly the pipeline a user runs.

    python benchmarks/bench_encoder.py            # a table
    python benchmarks/bench_encoder.py --json     # one JSON object on stdout, progress on stderr
    python benchmarks/bench_encoder.py --seeds 0 1 --variants full projection_head
    python benchmarks/bench_encoder.py --seeds 0 --variants full freeze3 --timing-repeats 5

After the pipeline runs, every variant but `base` is also timed on training alone (a fixed sample of pairs,
variants interleaved, medians), since whole-stage times on a shared machine move with its load.

Variants (all other settings are the asset's defaults):
  base             projection head with 0 epochs: the untouched all-MiniLM-L6-v2, the floor to beat
  full             fine-tune all six layers, max_seq_length 128, token embeddings frozen
  full_seq64       the same with 64 word pieces per training text
  freeze3          the same with the lower 3 of 6 layers frozen as well (the default)
  projection_head  transformer frozen, a linear head learned on its embeddings
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

VARIANTS: dict[str, dict[str, object]] = {
    "base": {"strategy": "projection_head", "head_epochs": 0},
    "full": {"strategy": "full", "freeze_layers": 0},
    "full_seq64": {"strategy": "full", "freeze_layers": 0, "max_seq_length": 64},
    "freeze3": {"strategy": "full", "freeze_layers": 3},
    "projection_head": {"strategy": "projection_head"},
}
DOWNSTREAM = ("compatibility_encoder", "property_scores", "latent_factors", "downstream_evaluation")


def materialize_upstream(env: dict[str, str]) -> float:
    started = time.perf_counter()
    run = subprocess.run([str(BIN / "instructlf"), "run", "demo"], capture_output=True, text=True, env=env, cwd=REPO)
    if run.returncode != 0:
        raise RuntimeError(f"instructlf run demo failed:\n{run.stderr[-3000:]}")
    return time.perf_counter() - started


def run_variant(name: str, overrides: dict[str, object], seed: int) -> dict[str, object]:
    """One re-materialization of the encoder and its descendants; metrics from the stored artifacts."""
    import dagster as dg

    from definitions import defs
    from instructlf_assets.report import build_report

    job = defs.get_job_def("instructlf_pipeline")
    config = {**overrides, "seed": seed}
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key="demo",
            instance=instance,
            asset_selection=[dg.AssetKey(key) for key in DOWNSTREAM],
            run_config={"ops": {"compatibility_encoder": {"config": config}}},
        )
        wall = time.perf_counter() - started
        stages = {
            stat.step_key: round(stat.end_time - stat.start_time, 2)
            for stat in instance.get_run_step_stats(result.run_id)
            if stat.start_time and stat.end_time
        }
        report = build_report(instance, defs, "demo") or {}
    encoder = result.asset_materializations_for_node("compatibility_encoder")[0].metadata
    value = lambda key: encoder[key].value  # noqa: E731
    return {
        "variant": name,
        "seed": seed,
        "config": config,
        "train_seconds": value("train_seconds"),
        "encoder_stage_s": stages.get("compatibility_encoder"),
        "downstream_wall_s": round(wall, 1),
        "base_recall@5": round(value("base_recall@5"), 4),
        "tuned_recall@5": round(value("tuned_recall@5"), 4),
        "metrics": {k: (None if v is None else round(v, 4)) for k, v in report.get("metrics", {}).items()},
        "stages_s": stages,
    }


def time_training_steps(variants: list[str], repeats: int, n_pairs: int) -> dict[str, dict[str, float]]:
    """Training alone, on one fixed sample of the demo's pairs, variants interleaved `repeats` times.

    Whole-stage times above move 2-4x with the shared machine's load; interleaving short fits of every variant
    and taking medians gives ratios that hold still.
    """
    from sentence_transformers import SentenceTransformer

    from definitions import defs
    from instructlf_assets.core.embedding import base_model_path
    from instructlf_assets.core.encoder_training import TrainingOptions, fine_tune, training_pairs
    from instructlf_assets.encoder import mapped_proposals

    load = lambda key: defs.load_asset_value(key, partition_key="demo")  # noqa: E731
    documents, vocabulary = load("raw_documents"), load("property_vocabulary")
    pairs = training_pairs(documents, mapped_proposals(load("property_proposals"), vocabulary), vocabulary)
    pairs = pairs.sample(min(n_pairs, len(pairs)), random_state=0)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:
            model = SentenceTransformer(str(base_model_path()), device="cpu", local_files_only=True)
            options = TrainingOptions(**{**VARIANTS[name], "max_train_pairs": n_pairs})  # type: ignore[arg-type]
            seconds[name].append(fine_tune(model, pairs, options).seconds)
    reference = statistics.median(seconds["full"]) if "full" in seconds else None
    return {
        name: {
            "median_s": round(statistics.median(values), 2),
            **({"ratio_vs_full": round(statistics.median(values) / reference, 3)} if reference else {}),
        }
        for name, values in seconds.items()
    }


def summarise(rows: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per variant, the mean over seeds of every numeric field and metric."""
    table: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(row["variant"] for row in rows):
        mine = [row for row in rows if row["variant"] == name]
        fields = {key: [row[key] for row in mine] for key in ("train_seconds", "encoder_stage_s", "tuned_recall@5")}
        for metric in mine[0]["metrics"]:
            fields[metric] = [row["metrics"][metric] for row in mine]
        table[name] = {
            key: round(statistics.mean(values), 4)
            for key, values in fields.items()
            if values and all(isinstance(v, int | float) for v in values)
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="none: training-only timing")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--timing-repeats", type=int, default=3, help="interleaved training-only fits per variant")
    parser.add_argument("--timing-pairs", type=int, default=192, help="pairs per training-only fit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_encoder_home_") as home:
        os.environ.update(DAGSTER_HOME=home, HF_HUB_OFFLINE="1")
        os.environ.pop("INSTRUCTLF_CATALOGUE", None)
        os.environ.pop("INSTRUCTLF_STORAGE", None)
        print("[bench] upstream: instructlf run demo", file=sys.stderr, flush=True)
        upstream_s = materialize_upstream(dict(os.environ))
        sys.path.insert(0, str(REPO))
        rows = []
        with contextlib.redirect_stdout(sys.stderr):
            for seed in args.seeds:  # variants interleaved within a seed, so load drifts hit all of them
                for name in args.variants:
                    print(f"[bench] {name} seed {seed}", file=sys.stderr, flush=True)
                    rows.append(run_variant(name, VARIANTS[name], seed))
            print("[bench] training-only timing", file=sys.stderr, flush=True)
            timing = time_training_steps(
                [name for name in args.variants if name != "base"], args.timing_repeats, args.timing_pairs
            )
    results = {
        "first_demo_run_s": round(upstream_s, 1),
        "summary": summarise(rows),
        "training_only": {"n_pairs": args.timing_pairs, "repeats": args.timing_repeats, "variants": timing},
        "runs": rows,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, values in results["summary"].items():
        print(f"{name:<16} " + "  ".join(f"{key}={value}" for key, value in values.items()))
    for name, values in results["training_only"]["variants"].items():
        print(f"training only, {name:<16} {values}")


if __name__ == "__main__":
    main()
