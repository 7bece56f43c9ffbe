"""The markdown tables of `RESULTS.md`'s paper-task section, printed from a `bench_paper_tasks.py` JSON file.

Every number in that section is copied from this script's output, never typed by hand:

    python benchmarks/paper_tasks_table.py [benchmarks/results/paper_tasks.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METHODS = ("factors", "property_scores", "embeddings", "tfidf", "lda", "bertopic", "popularity", "majority")
HEADLINES = {
    "inspired": ["hit@20/test", "hit@50/test", "hit@20/valid"],
    "bills": [
        "tree_balanced_accuracy/topic",
        "tree_balanced_accuracy/topic::subtopic",
        "logreg_balanced_accuracy/topic",
        "cv_tree_balanced_accuracy/topic",
    ],
    "alfworld": ["accuracy/valid_seen", "accuracy/valid_unseen", "accuracy/valid"],
}


def metric_rows(results: list[dict]) -> list[str]:
    lines = ["| dataset | metric/split | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    for result in results:
        metrics = result.get("metrics", {})
        for metric in HEADLINES.get(result["dataset"], []):
            cells = [metrics.get(f"{method}/{metric}") for method in METHODS]
            if all(cell is None for cell in cells):
                continue
            shown = " | ".join("" if c is None else f"{c:.3f}" for c in cells)
            lines.append(f"| {result['dataset']} | {metric} | {shown} |")
    return lines


def timing_rows(results: list[dict]) -> list[str]:
    lines = ["| dataset | wall s | in runs s | stages s | slowest stages |", "|---|---|---|---|---|"]
    for result in results:
        stages = sorted(result.get("stages_s", {}).items(), key=lambda item: -item[1])[:3]
        slowest = ", ".join(f"{name} {seconds:.0f}" for name, seconds in stages)
        lines.append(
            f"| {result['dataset']} | {result['wall_s']:.0f} | {result['runs_total_s']:.0f} | "
            f"{result['stages_total_s']:.0f} | {slowest} |"
        )
    return lines


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "paper_tasks.json")
    payload = json.loads(path.read_text())
    made = payload["provenance"]
    print(
        f"Made by commit {made['commit'][:7]} (uncommitted changes: {made['uncommitted_changes']}), proposer "
        f"{made['proposer']}, {made['asset_config']}, torch {made['torch']}, {made['cpus']} CPUs, "
        f"started {made['started_at']}.\n"
    )
    print("\n".join(metric_rows(payload["results"])))
    print()
    print("\n".join(timing_rows(payload["results"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
