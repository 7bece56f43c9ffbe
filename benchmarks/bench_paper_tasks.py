"""The paper's three tasks end to end: `instructlf run --all` on Inspired, Bills and ALFWorld, one comparison table.

Each dataset runs through the real CLI on a fresh Dagster instance (kept afterwards, so the UI can show the same
runs), with the offline proposer unless INSTRUCTLF_PROPOSER says otherwise. `--all` re-materializes every stage,
so every number comes from this benchmark's own runs; stage times are read from the events of exactly those runs
(found by the CLI process id they are tagged with), and the provenance of each result (commit, goal, proposer,
model, catalogue entry, per-stage config and code versions, run ids) is written beside it.

    INSTRUCTLF_DATA_DIR=../shared/data python benchmarks/bench_paper_tasks.py [--datasets bills inspired] \
        [--home DIR] [--json benchmarks/results/paper_tasks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("inspired", "bills", "alfworld")
METHODS = ("factors", "property_scores", "embeddings", "tfidf", "lda", "popularity", "majority", "upper_bound")
CLI = [sys.executable, "-m", "instructlf_assets.cli"]


def run_dataset(name: str, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(
        [*CLI, "run", name, "--all"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    runs = own_runs(process.pid, env["DAGSTER_HOME"])
    timing = {"wall_s": round(seconds, 1), "runs": runs, **stage_seconds(runs)}
    if process.returncode != 0:
        return {"dataset": name, "ok": False, **timing, "error": stderr.strip().splitlines()[-1:]}
    made, error = cli_report(name, env)
    if made is None:
        return {"dataset": name, "ok": False, **timing, "error": error[-1:]}
    return {"dataset": name, "ok": True, **timing, **made}


def cli_report(name: str, env: dict[str, str]) -> tuple[dict | None, list[str]]:
    """`instructlf report NAME --json` as a dict, or None and the last lines of its error."""
    report = subprocess.run([*CLI, "report", name, "--json"], cwd=REPO, env=env, capture_output=True, text=True)
    if report.returncode != 0:
        return None, report.stderr.strip().splitlines()[-3:]
    return json.loads(report.stdout), []


def latest_metadata(home: str, asset: str, partition: str, fields: tuple[str, ...]) -> dict[str, object]:
    """The named metadata values of the newest materialization of `asset` for `partition` in instance `home`."""
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
        ).records
    if not records:
        return {}
    metadata = records[0].event_log_entry.asset_materialization.metadata
    return {name: metadata[name].value for name in fields if name in metadata}


def own_runs(pid: int, home: str) -> list[dict]:
    """The runs the CLI process `pid` launched (it tags each with its pid), oldest first."""
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"instructlf/pid": str(pid)}))
        records = []
        for run in reversed(runs):
            stats = instance.get_run_stats(run.run_id)
            records.append(
                {
                    "run_id": run.run_id,
                    "job": run.job_name,
                    "status": run.status.value,
                    "seconds": round((stats.end_time or 0) - (stats.start_time or 0), 1),
                    "steps": step_seconds(instance, run.run_id),
                }
            )
        return records


def step_seconds(instance, run_id: str) -> dict[str, float]:
    import dagster as dg

    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            durations[event.step_key] = round(record.timestamp - started.get(event.step_key, record.timestamp), 1)
    return durations


def stage_seconds(runs: list[dict]) -> dict[str, object]:
    """Pipeline stage times of these runs, their sum, and what the wall time spent outside any run."""
    stages = {
        step: seconds for run in runs if run["job"] == "instructlf_pipeline" for step, seconds in run["steps"].items()
    }
    in_runs = sum(run["seconds"] for run in runs)
    return {"stages_s": stages, "stages_total_s": round(sum(stages.values()), 1), "runs_total_s": round(in_runs, 1)}


def provenance(env: dict[str, str]) -> dict[str, object]:
    """How these numbers were made: code, environment and machine."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout)
    import torch

    return {
        "commit": commit,
        "uncommitted_changes": dirty,
        "proposer": env.get("INSTRUCTLF_PROPOSER", "offline"),
        "llm_model": env.get("INSTRUCTLF_LLM_MODEL"),
        "asset_config": "defaults of each asset's Config (no --config)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


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
    parser.add_argument("--home", help="DAGSTER_HOME for the runs (default: a new temporary directory)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "paper_tasks.json"))
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="instructlf-bench-")).resolve()
    env = {k: v for k, v in os.environ.items() if k != "INSTRUCTLF_CATALOGUE"}
    env.setdefault("INSTRUCTLF_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env.update(DAGSTER_HOME=str(home), HF_HUB_OFFLINE="1")
    made = provenance(env)
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
        print(
            f"  {result['dataset']}: wall {result['wall_s']:.0f}, in runs {result['runs_total_s']:.0f}, "
            f"stages {result['stages_total_s']:.0f}{status}; {stages}"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": {**made, "dagster_home": str(home)}, "results": results, "table": rows}
    Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0 if all(result["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
