"""The markdown tables of `RESULTS.md`'s ablation section, printed from a `bench_ablation.py` JSON file.

Every number in that section is copied from this script's output, never typed by hand. Values are means over
the seeds; `±` is the protocol's standard error (binomial or bootstrap over evaluated documents), averaged over
seeds; the ratio is factors over the best baseline of the same row and split.

    python benchmarks/ablation_table.py [benchmarks/results/ablation.json]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

BASELINES = ("popularity", "majority", "tfidf", "embeddings", "lda")
# (column title, dataset, metric key after the method) for the evaluation split and for validation.
EVALUATION = (
    ("Inspired Hit@20 test", "inspired", "hit@20/test"),
    ("Bills topic tree test", "bills", "tree_balanced_accuracy/topic"),
    ("Bills topic::subtopic tree test", "bills", "tree_balanced_accuracy/topic::subtopic"),
    ("ALFWorld valid_seen", "alfworld", "accuracy/valid_seen"),
)
VALIDATION = (
    ("Inspired Hit@20 valid", "inspired", "hit@20/valid"),
    ("Bills topic tree valid", "bills", "valid_tree_balanced_accuracy/topic"),
    ("Bills topic::subtopic tree valid", "bills", "valid_tree_balanced_accuracy/topic::subtopic"),
    ("ALFWorld train-state valid", "alfworld", "accuracy/valid"),
)


def by_row(payload: dict) -> dict[tuple[str, str], list[dict]]:
    """Results grouped by (row, dataset), one entry per seed."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for result in payload["results"]:
        if result.get("ok"):
            grouped[(result["row"], result["dataset"])].append(result)
    return grouped


def mean_of(results: list[dict], key: str, field: str = "metrics") -> float | None:
    values = [r[field][key] for r in results if r.get(field, {}).get(key) is not None]
    return float(np.mean(values)) if values else None


def cell(results: list[dict], metric: str) -> str:
    """factors ± SE, property scores, best baseline, ratio."""
    factors = mean_of(results, f"factors/{metric}")
    if factors is None:
        return "–"
    se = mean_of(results, f"factors/{metric}", "stderr")
    props = mean_of(results, f"property_scores/{metric}")
    baselines = {name: mean_of(results, f"{name}/{metric}") for name in BASELINES}
    baselines = {name: value for name, value in baselines.items() if value is not None}
    best = max(baselines, key=baselines.get) if baselines else None
    seeds = "/".join(f"{r['metrics'].get(f'factors/{metric}', float('nan')):.3f}" for r in results)
    text = f"**{factors:.3f}**" + (f" ±{se:.3f}" if se is not None else "") + f" ({seeds})"
    if props is not None:
        text += f"; props {props:.3f}"
    if best is not None:
        text += f"; {best} {baselines[best]:.3f}; **{factors / baselines[best]:.2f}x**"
    return text


def table(payload: dict, columns: tuple) -> list[str]:
    grouped = by_row(payload)
    lines = [
        "| row | change | " + " | ".join(title for title, _, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for row in payload["rows"]:
        cells = [cell(grouped.get((row["name"], dataset), []), metric) for _, dataset, metric in columns]
        lines.append(f"| {row['name']} | {row['change']} | " + " | ".join(cells) + " |")
    return lines


def shape_table(payload: dict) -> list[str]:
    """Demo AMI, vocabulary size, factors and wall time per dataset run, per row (means over seeds)."""
    grouped = by_row(payload)
    datasets = ("demo", "inspired", "bills", "alfworld")
    lines = [
        "| row | demo AMI | " + " | ".join(f"{d} properties / factors / wall s" for d in datasets[1:]) + " |",
        "|---|---|" + "---|" * (len(datasets) - 1),
    ]
    for row in payload["rows"]:
        demo = mean_of(grouped.get((row["name"], "demo"), []), "factors/ami_planted_aspects")
        cells = [f"{demo:.3f}" if demo is not None else "–"]
        for dataset in datasets[1:]:
            results = grouped.get((row["name"], dataset), [])
            if not results:
                cells.append("–")
                continue
            sizes = "/".join(str(r.get("n_properties")) for r in results)
            factors = "/".join(str(r.get("n_factors")) for r in results)
            walls = "/".join(f"{r['wall_s']:.0f}" for r in results)
            cells.append(f"{sizes} / {factors} / {walls}")
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "ablation.json")
    payload = json.loads(path.read_text())
    made = payload["provenance"]
    print(f"From `{path.name}`: commit {made['commit'][:7]}, proposer {made['proposer']}, {made['started_at']}.\n")
    print("Evaluation splits (the headline; decides nothing):\n")
    print("\n".join(table(payload, EVALUATION)))
    print("\nValidation (where configurations are chosen):\n")
    print("\n".join(table(payload, VALIDATION)))
    print("\nShape and cost (seed 0 / seed 1):\n")
    print("\n".join(shape_table(payload)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
