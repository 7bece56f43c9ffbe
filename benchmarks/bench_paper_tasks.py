"""The paper's three tasks end to end: `instructlf run` on Inspired, Bills and ALFWorld, one comparison table.

Each dataset runs through the real CLI on one Dagster instance (so the UI can show the same runs afterwards), with
the offline proposer unless INSTRUCTLF_PROPOSER says otherwise. The table puts Instruct-LF's factors beside every
baseline on the same split; stage wall times come from the run's step events.

    INSTRUCTLF_DATA_DIR=../shared/data python benchmarks/bench_paper_tasks.py [--datasets bills inspired] \
        [--home .bench_home] [--json benchmarks/results/paper_tasks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("inspired", "bills", "alfworld")
METHODS = ("factors", "property_scores", "embeddings", "tfidf", "lda", "popularity", "majority", "upper_bound")


def run_dataset(name: str, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "instructlf_assets.cli", "run", name], cwd=REPO, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        return {"dataset": name, "ok": False, "seconds": seconds, "error": run.stderr.strip().splitlines()[-1:]}
    report = subprocess.run(
        [sys.executable, "-m", "instructlf_assets.cli", "report", name, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "dataset": name,
        "ok": True,
        "seconds": round(seconds, 1),
        "stages_s": stage_seconds(name, env["DAGSTER_HOME"]),
        **json.loads(report.stdout),
    }


def stage_seconds(partition: str, home: str) -> dict[str, float]:
    """Wall time of each step of the partition's latest pipeline run, from the instance's event log."""
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(job_name="instructlf_pipeline", tags={"dagster/partition": partition}), limit=1
        )
        if not runs:
            return {}
        started: dict[str, float] = {}
        durations: dict[str, float] = {}
        for record in instance.all_logs(runs[0].run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = record.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in started:
                durations[event.step_key] = round(record.timestamp - started[event.step_key], 1)
        return durations


def comparison_rows(result: dict) -> list[dict]:
    """One row per (metric, split): the value of each method, factors first."""
    rows: dict[tuple[str, str], dict] = {}
    for key, value in result.get("metrics", {}).items():
        parts = key.split("/")
        method, metric, split = parts[0], parts[1], "/".join(parts[2:])
        if method not in METHODS:
            continue
        row = rows.setdefault((metric, split), {"dataset": result["dataset"], "metric": metric, "split": split})
        row[method] = value
    return [rows[k] for k in sorted(rows)]


def format_table(rows: list[dict]) -> str:
    present = [m for m in METHODS if any(m in row for row in rows)]
    header = f"{'dataset':<9} {'metric/split':<42}" + "".join(f"{m[:12]:>13}" for m in present)
    lines = [header, "-" * len(header)]
    for row in rows:
        label = f"{row['metric']}/{row['split']}" if row["split"] else row["metric"]
        cells = "".join(f"{row[m]:>13.3f}" if m in row else f"{'':>13}" for m in present)
        lines.append(f"{row['dataset']:<9} {label[:42]:<42}{cells}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--home", default=str(REPO / ".bench_home"), help="DAGSTER_HOME for the runs")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "paper_tasks.json"))
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "INSTRUCTLF_CATALOGUE"}
    env.setdefault("INSTRUCTLF_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env.update(DAGSTER_HOME=str(Path(args.home).resolve()), HF_HUB_OFFLINE="1")
    results = []
    for name in args.datasets:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(run_dataset(name, env))
    rows = [row for result in results if result["ok"] for row in comparison_rows(result)]
    print(format_table(rows))
    print("\nwall time per stage (s)")
    for result in results:
        stages = ", ".join(f"{k} {v}" for k, v in result.get("stages_s", {}).items())
        status = "" if result["ok"] else f" FAILED: {result['error']}"
        print(f"  {result['dataset']}: total {result['seconds']:.0f}{status}; {stages}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"results": results, "table": rows}, indent=2))
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
