"""What each discovery change does, one at a time, on the paper's three tasks and the demo: the ablation table.

Rows are configurations, cumulative from the old default; each is applied as a catalogue entry (written to a
temporary catalogue directory that INSTRUCTLF_CATALOGUE points at) and run with the real CLI on one Dagster
instance per seed, so a row re-runs only the stages its change makes stale, as a user's edit would:

    before             clauses; n_factors one per ten properties (the old rule, pinned with --config)
    parallel_analysis  + n_factors from parallel analysis of the training scores
    candidates         + offline_strategy: candidates (phrases recurring across training documents)
    seeker_turns       + Inspired documents are the seeker's turns only
    newest_step        candidates + ALFWorld states propose from their newest step (last 2 lines); not cumulative
                       over seeker_turns, which validation on whole held-out dialogues rejected
    newest_turns       + Inspired dialogues propose from their last 4 lines (the newest two exchanges)

Columns: every task's headline metric with its standard error for factors, property scores and each baseline,
the demo's AMI to its planted aspects, vocabulary size, factors, and wall time per dataset run. Each seed sets
`seed` in the encoder, factor and evaluation configs (the offline proposer is deterministic). Bills runs without
its transductive 5-fold extra (`task.cross_validate: false`): the headline is the held-out test split.

    INSTRUCTLF_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/bench_ablation.py \
        [--seeds 0 1] [--rows before candidates] [--json benchmarks/results/ablation.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_tasks import CLI, REPO, cli_report, latest_metadata, own_runs, provenance, stage_seconds

DATASETS = ("demo", "inspired", "bills", "alfworld")
HEADLINES = {
    "inspired": ("hit@20", "test"),
    "bills": ("tree_balanced_accuracy", "topic"),
    "bills_subtopic": ("tree_balanced_accuracy", "topic::subtopic"),
    "alfworld": ("accuracy", "valid_seen"),
    "alfworld_unseen": ("accuracy", "valid_unseen"),
}
METHODS = ("factors", "property_scores", "embeddings", "tfidf", "lda", "popularity", "majority")
BASELINES = ("embeddings", "tfidf", "lda", "popularity", "majority")
# The old rule's count for the clause vocabularies (clip(round(properties / 10), 2, 50)); checked after the run.
OLD_RULE_FACTORS = {"inspired": 28, "bills": 5, "alfworld": 32}
# The ablation's ALFWorld rows are the 2,000-state sample it was run on (`alfworld` now holds every state, 15 min
# a row); its results keep the name `alfworld`.
SOURCE_ENTRY = {"alfworld": "alfworld_2k"}


@dataclass(frozen=True)
class Row:
    name: str
    change: str
    strategy: str = "candidates"
    old_factor_rule: bool = False
    seeker_turns: bool = True
    last_lines: tuple[tuple[str, int], ...] = ()  # (dataset, propose_from_last_lines)


ROWS = (
    Row("before", "clauses, one factor per ten properties", "clauses", True, False),
    Row("parallel_analysis", "+ n_factors from parallel analysis", "clauses", False, False),
    Row("candidates", "+ offline_strategy: candidates", "candidates", False, False),
    Row("seeker_turns", "+ Inspired: the seeker's turns", "candidates", False, True),
    Row(
        "newest_step",
        "candidates + ALFWorld: propose from the newest step",
        "candidates",
        False,
        False,
        (("alfworld", 2),),
    ),
    Row(
        "newest_turns",
        "+ Inspired: propose from the newest two exchanges",
        "candidates",
        False,
        False,
        (("alfworld", 2), ("inspired", 4)),
    ),
)


def catalogue_entry(dataset: str, row: Row) -> dict:
    """The repo's catalogue entry with this row's settings written out in full (not relative to the default)."""
    entry = yaml.safe_load((REPO / "datasets" / f"{SOURCE_ENTRY.get(dataset, dataset)}.yaml").read_text())
    entry = copy.deepcopy(entry)
    entry.setdefault("prompt", {})["offline_strategy"] = row.strategy
    if dataset != "demo":  # the demo keeps its six planted aspects' n_factors: 6
        entry.pop("n_factors", None)
    if dataset == "inspired":
        entry["corpus"]["turns"] = "seeker" if row.seeker_turns else "all"
    if dataset == "bills":
        entry["task"]["cross_validate"] = False
    entry.setdefault("prompt", {}).setdefault("candidates", {})["propose_from_last_lines"] = dict(row.last_lines).get(
        dataset
    )
    return entry


def asset_config(dataset: str, row: Row, seed: int) -> dict:
    factors: dict[str, object] = {"seed": seed}
    if row.old_factor_rule and dataset in OLD_RULE_FACTORS:
        factors["n_factors"] = OLD_RULE_FACTORS[dataset]
    return {
        "ops": {
            "compatibility_encoder": {"config": {"seed": seed}},
            "latent_factors": {"config": factors},
            "downstream_evaluation": {"config": {"seed": seed}},
        }
    }


def run_row(dataset: str, row: Row, seed: int, env: dict[str, str], work: Path) -> dict:
    catalogue = work / f"catalogue-{row.name}"
    catalogue.mkdir(exist_ok=True)
    for name in DATASETS:
        (catalogue / f"{name}.yaml").write_text(yaml.safe_dump(catalogue_entry(name, row), sort_keys=False))
    config = work / f"config-{dataset}-{row.name}-{seed}.yaml"
    config.write_text(yaml.safe_dump(asset_config(dataset, row, seed)))
    env = {**env, "INSTRUCTLF_CATALOGUE": str(catalogue)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [*CLI, "run", dataset, "--config", str(config)], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    runs = own_runs(process.pid, env["DAGSTER_HOME"])
    result = {"dataset": dataset, "row": row.name, "seed": seed, "wall_s": round(wall, 1), **stage_seconds(runs)}
    result["ran_stages"] = sorted(result["stages_s"])
    if process.returncode != 0:
        return {**result, "ok": False, "error": (stderr.strip().splitlines() or stdout.strip().splitlines())[-3:]}
    made, error = cli_report(dataset, env)
    if made is None:
        return {**result, "ok": False, "error": error}
    return {
        **result,
        "ok": True,
        "metrics": made["metrics"],
        "stderr": made.get("stderr", {}),
        "n_factors": made["summary"].get("n_factors"),
        "n_factors_rule": made["summary"].get("n_factors_rule", "requested"),
        "n_properties": vocabulary_size(env["DAGSTER_HOME"], dataset),
        "provenance": made["provenance"],
    }


def vocabulary_size(home: str, dataset: str) -> int | None:
    value = latest_metadata(home, "property_vocabulary", dataset, ("dagster/row_count",)).get("dagster/row_count")
    return None if value is None else int(value)


def row_summary(result: dict) -> dict:
    """The headline numbers of one dataset run: value and standard error per method, plus the demo's AMI."""
    metrics, stderr, out = result.get("metrics", {}), result.get("stderr", {}), {}
    for task, (metric, split) in HEADLINES.items():
        if not task.startswith(result["dataset"]):
            continue
        for method in METHODS:
            key = f"{method}/{metric}/{split}"
            if key in metrics:
                out[f"{task}/{method}"] = metrics[key]
                out[f"{task}/{method}/se"] = stderr.get(key)
    if result["dataset"] == "demo":
        out["demo/ami"] = metrics.get("factors/ami_planted_aspects")
    return out


def old_rule_check(result: dict, row: Row) -> str | None:
    if not row.old_factor_rule or result["dataset"] not in OLD_RULE_FACTORS or not result.get("n_properties"):
        return None
    expected = int(min(max(round(result["n_properties"] / 10), 2), 50))
    pinned = OLD_RULE_FACTORS[result["dataset"]]
    return "ok" if expected == pinned else f"pinned {pinned}, the old rule gives {expected}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--rows", nargs="+", default=[row.name for row in ROWS], choices=[r.name for r in ROWS])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--work", help="directory for the instances and catalogues (default: a new temp dir)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "ablation.json"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="instructlf-ablation-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "INSTRUCTLF_CATALOGUE"}
    env.setdefault("INSTRUCTLF_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["HF_HUB_OFFLINE"] = "1"
    made = provenance(env)
    rows = [row for row in ROWS if row.name in args.rows]
    results = []
    for seed in args.seeds:
        home = work / f"home-seed{seed}"
        home.mkdir(exist_ok=True)
        for row in rows:
            for dataset in args.datasets:
                print(f"seed {seed} row {row.name}: {dataset} ...", file=sys.stderr, flush=True)
                result = run_row(dataset, row, seed, {**env, "DAGSTER_HOME": str(home)}, work)
                result["old_rule_check"] = old_rule_check(result, row)
                result["summary"] = row_summary(result)
                results.append(result)
                status = "ok" if result["ok"] else f"FAILED {result['error']}"
                print(f"  {status} in {result['wall_s']:.0f} s: {result['summary']}", file=sys.stderr, flush=True)
                save(args.json, made, work, rows, results)
    return 0 if all(result["ok"] for result in results) else 1


def save(path: str, made: dict, work: Path, rows: list[Row], results: list[dict]) -> None:
    payload = {
        "benchmark": "bench_ablation.py",
        "provenance": {**made, "work_dir": str(work), "asset_config": "seed per stage; n_factors pinned in 'before'"},
        "rows": [{"name": row.name, "change": row.change} for row in rows],
        "results": results,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
