"""What a document costs as the corpus grows: ALFWorld states at several sizes end to end, and BERTopic beside them.

Each size is the `alfworld` catalogue entry with `corpus.max_train_documents` set to that many training states
(`all`: the entry as shipped, every state), run with the real CLI (`instructlf run alfworld --all`) on its own
fresh Dagster instance, so no size reads another's embedding cache. Per size it records the wall time, each
stage's seconds and share (from the events of exactly this CLI's runs), the peak resident memory of the whole
process tree (sampled every 0.5 s: the CLI, its run and step processes together) and the task's metrics.
BERTopic 0.17 (defaults: UMAP + HDBSCAN, the same packaged all-MiniLM-L6-v2) then runs `fit_transform` on exactly
the documents of one size (`--bertopic-size`, default 20000), in a fresh process, back to back with the pipeline.

    INSTRUCTLF_DATA_DIR=../shared/data python benchmarks/bench_scale.py --json [benchmarks/results/scale.json]
    python benchmarks/bench_scale.py --quick      # 300 and 1,000 states, BERTopic at 300: under 5 minutes

`scaling_slope` is the least-squares slope of log(end-to-end seconds) on log(documents): 1.0 is linear.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from bench_paper_tasks import CLI, REPO, own_runs, provenance, stage_seconds

DATASET = "alfworld"
FULL_SIZES = ("1000", "5000", "20000", "all")
QUICK_SIZES = ("300", "1000")
HEADLINE = "factors/accuracy/valid_seen"


def peak_tree_rss_mb(pid: int, stop: threading.Event, out: dict[str, float]) -> None:
    """Sample the summed RSS of `pid` and all its descendants until `stop`; keep the largest sum."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        total = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += process.memory_info().rss
        except psutil.NoSuchProcess:
            break
        out["peak_mb"] = max(out.get("peak_mb", 0.0), total / 2**20)
        stop.wait(0.5)


def run_measured(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command`; its wall seconds and the peak RSS (MB) of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peak = threading.Event(), {}
    sampler = threading.Thread(target=peak_tree_rss_mb, args=(process.pid, stop, peak), daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    done.pid = process.pid  # type: ignore[attr-defined]
    return done, seconds, round(peak.get("peak_mb", 0.0), 1)


def size_catalogue(size: str, directory: Path) -> Path:
    """The shipped `alfworld` entry, capped at `size` training states unless `all`."""
    entry = yaml.safe_load((REPO / "datasets" / f"{DATASET}.yaml").read_text())
    entry["corpus"]["max_train_documents"] = None if size == "all" else int(size)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{DATASET}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return directory


def run_size(size: str, base_env: dict[str, str], work: Path) -> dict:
    home = work / f"home-{size}"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **base_env,
        "DAGSTER_HOME": str(home),
        "INSTRUCTLF_CATALOGUE": str(size_catalogue(size, work / f"catalogue-{size}")),
    }
    done, seconds, peak = run_measured([*CLI, "run", DATASET, "--all"], env)
    runs = own_runs(done.pid, str(home))  # type: ignore[attr-defined]
    timing = stage_seconds(runs)
    stages = timing["stages_s"]
    total = sum(stages.values()) or 1.0
    result = {
        "size": size,
        "home": str(home),
        "ok": done.returncode == 0,
        "end_to_end_s": round(seconds, 1),
        "peak_rss_mb": peak,
        **timing,
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
    }
    if not result["ok"]:
        return {**result, "error": done.stderr.strip().splitlines()[-5:]}
    report = subprocess.run([*CLI, "report", DATASET, "--json"], cwd=REPO, env=env, capture_output=True, text=True)
    if report.returncode == 0:
        payload = json.loads(report.stdout)
        result["metrics"] = payload.get("metrics", {})
        result["stderr"] = payload.get("stderr", {})
        result["summary"] = payload.get("summary", {})
    result["n_documents"] = document_count(home)
    result["stage_peak_rss_mb"] = stage_peaks(home)
    return result


def stage_peaks(home: Path) -> dict[str, float]:
    """Each stage's own process peak RSS, as its latest materialization recorded it (`peak_rss_mb`)."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    peaks = {}
    with dg.DagsterInstance.get() as instance:
        for key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(key)
            value = event.asset_materialization.metadata.get("peak_rss_mb") if event else None
            if value is not None:
                peaks[key.to_user_string()] = float(value.value)
    return peaks


def document_count(home: Path) -> int:
    import pyarrow.parquet as pq

    files = sorted((home / "instructlf" / "raw_documents" / DATASET).rglob("*.parquet"))
    return pq.ParquetFile(files[-1]).metadata.num_rows if files else 0


def entry_max_seq_length() -> int | None:
    """The word pieces the shipped entry's encoder reads (what BERTopic and the sampling check must read too)."""
    entry = yaml.safe_load((REPO / "datasets" / f"{DATASET}.yaml").read_text())
    return (entry.get("encoder") or {}).get("max_seq_length")


def bertopic_child(home: str) -> None:
    """In a fresh process: BERTopic's fit_transform on the documents the pipeline read at this size.

    The encoder is the same packaged MiniLM read to the same length as the pipeline's (the catalogue entry's
    `encoder.max_seq_length`), so the two compare what they do with one encoder pass, not two truncations.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import resource

    from bertopic import BERTopic
    from sentence_transformers import SentenceTransformer

    from instructlf_assets.api import load_artifacts
    from instructlf_assets.core.embedding import base_model_path

    documents = load_artifacts(DATASET, ("raw_documents",), storage=str(Path(home) / "instructlf"))["raw_documents"]
    texts = documents["text"].tolist()
    model = SentenceTransformer(str(base_model_path()), device="cpu", local_files_only=True)
    seq = entry_max_seq_length()
    if seq:
        model.max_seq_length = seq
    started = time.perf_counter()
    topics, _ = BERTopic(embedding_model=model).fit_transform(texts)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = {"n_documents": len(texts), "fit_transform_s": round(seconds, 1), "n_topics": len(set(topics) - {-1})}
    print(json.dumps({**info, "max_seq_length": model.max_seq_length, "peak_rss_mb": round(peak, 1)}))


def run_bertopic(result: dict, env: dict[str, str]) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--bertopic-child", result["home"]]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"ok": False, "error": done.stderr.strip().splitlines()[-5:]}
    return {"ok": True, "size": result["size"], **json.loads(done.stdout.strip().splitlines()[-1])}


def encoder_sampling(home: str, pair_counts: tuple[int, ...] = (640, 5000)) -> list[dict]:
    """Held-out recall@5 of the projection head trained on more or fewer sampled pairs, from this size's stored
    proposals and cached base embeddings: what the fixed sample (`max_train_pairs`) costs in quality."""
    import time as clock

    from instructlf_assets.api import load_artifacts
    from instructlf_assets.core.encoder_training import (
        TrainingOptions,
        fine_tune,
        projection_head,
        recall_at_k,
        through_head,
        training_pairs,
    )
    from instructlf_assets.encoder import mapped_proposals
    from resources import EncoderResource

    storage = str(Path(home) / "instructlf")
    values = load_artifacts(DATASET, ("raw_documents", "property_proposals", "property_vocabulary"), storage=storage)
    documents, vocabulary = values["raw_documents"], values["property_vocabulary"]
    proposals = mapped_proposals(values["property_proposals"], vocabulary)
    pairs = training_pairs(documents, proposals, vocabulary)
    held_out = documents[documents["split"] == "valid"]
    held_out_proposals = proposals[proposals["doc_id"].isin(held_out["doc_id"])]
    seq = entry_max_seq_length()
    encoder = EncoderResource(embedding_cache=str(Path(storage) / "embedding_cache"))
    base = encoder.base_embedder(seq)
    rows = [{"pairs": 0, "recall_at_5": recall_at_k(base, held_out, held_out_proposals, vocabulary, 5)}]
    for count in pair_counts:
        model = encoder.load_fresh()
        started = clock.perf_counter()
        options = TrainingOptions(strategy="projection_head", head_max_train_pairs=count)
        fine_tune(model, pairs, options, embed=base)
        seconds = clock.perf_counter() - started
        tuned = through_head(base, *projection_head(model))
        recall = recall_at_k(tuned, held_out, held_out_proposals, vocabulary, 5)
        rows.append({"pairs": min(count, len(pairs)), "train_s": round(seconds, 2), "recall_at_5": recall})
    return [{**row, "pairs_available": len(pairs)} for row in rows]


def scaling_slope(results: list[dict]) -> float | None:
    """Least-squares slope of log(seconds) against log(documents) over the sizes that ran."""
    points = [(math.log(r["n_documents"]), math.log(r["end_to_end_s"])) for r in results if r["ok"]]
    if len(points) < 2:
        return None
    mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx, 3) if sxx else None


def summary(results: list[dict], bertopic: dict | None) -> dict:
    by_size = {r["size"]: r for r in results}
    pipeline = by_size.get(bertopic["size"]) if bertopic and bertopic.get("ok") else None
    return {
        "end_to_end_s": {r["size"]: r["end_to_end_s"] for r in results},
        "n_documents": {r["size"]: r.get("n_documents") for r in results},
        "peak_rss_mb": {r["size"]: r["peak_rss_mb"] for r in results},
        "stage_share": {r["size"]: r["stage_share"] for r in results},
        "headline": {r["size"]: r.get("metrics", {}).get(HEADLINE) for r in results},
        "scaling_slope": scaling_slope(results),
        "ratio_vs_bertopic": (
            round(pipeline["end_to_end_s"] / bertopic["fit_transform_s"], 3) if pipeline and bertopic else None
        ),
        "bertopic_size": bertopic.get("size") if bertopic else None,
        "ratio_vs_bertopic_20k": (
            round(pipeline["end_to_end_s"] / bertopic["fit_transform_s"], 3)
            if pipeline and bertopic and bertopic["size"] == "20000"
            else None
        ),
        "alfworld_all_states_s": by_size["all"]["end_to_end_s"] if "all" in by_size and by_size["all"]["ok"] else None,
    }


METHODS = ("factors", "property_scores", "embeddings", "tfidf", "lda", "bertopic", "majority")


def markdown_tables(payload: dict) -> str:
    """RESULTS.md's scale tables, printed from a bench_scale JSON file (no number is typed by hand)."""
    results = [r for r in payload["results"] if r["ok"]]
    stages = [s for s in results[-1]["stages_s"]] if results else []
    lines = ["| training states | documents | end to end (s) | s per 1k documents | peak RSS (MB) | "
             + " | ".join(f"{s} share" for s in stages) + " |",
             "|---" * (5 + len(stages)) + "|"]  # fmt: skip
    for r in results:
        shares = " | ".join(f"{r['stage_share'].get(s, 0):.0%}" for s in stages)
        per_k = 1000 * r["end_to_end_s"] / r["n_documents"]
        lines.append(f"| {r['size']} | {r['n_documents']} | {r['end_to_end_s']:.0f} | {per_k:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {shares} |")  # fmt: skip
    lines += ["", "| training states | " + " | ".join(METHODS) + " |", "|---" * (1 + len(METHODS)) + "|"]
    for r in results:
        cells = []
        for method in METHODS:
            value = r.get("metrics", {}).get(f"{method}/accuracy/valid_seen")
            se = r.get("stderr", {}).get(f"{method}/accuracy/valid_seen")
            cells.append("–" if value is None else f"{value:.3f}" + (f" ±{se:.3f}" if se else ""))
        lines.append(f"| {r['size']} | " + " | ".join(cells) + " |")
    peaks = [r for r in results if r.get("stage_peak_rss_mb")]
    if peaks:
        lines += ["", "| training states | " + " | ".join(f"{s} peak MB" for s in stages) + " |",
                  "|---" * (1 + len(stages)) + "|"]  # fmt: skip
        for r in peaks:
            cells = [f"{r['stage_peak_rss_mb'].get(s, float('nan')):.0f}" for s in stages]
            lines.append(f"| {r['size']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", help=f"training states per size, or `all` (default {FULL_SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, BERTopic at the smallest")
    parser.add_argument("--bertopic-size", help="the size BERTopic runs on (default 20000; the smallest with --quick)")
    parser.add_argument("--no-bertopic", action="store_true")
    parser.add_argument("--work", help="directory for the instances (default: a new temporary directory)")
    parser.add_argument("--json", nargs="?", const=str(REPO / "benchmarks" / "results" / "scale.json"))
    parser.add_argument("--table", help="print RESULTS.md's tables from this JSON file and exit")
    parser.add_argument("--bertopic-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(markdown_tables(json.loads(Path(args.table).read_text())))
        return 0
    if args.bertopic_child:
        bertopic_child(args.bertopic_child)
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    bertopic_size = args.bertopic_size or (sizes[0] if args.quick else "20000")
    work = Path(args.work or tempfile.mkdtemp(prefix="instructlf-scale-")).resolve()
    env = {k: v for k, v in os.environ.items() if k != "INSTRUCTLF_CATALOGUE"}
    env.setdefault("INSTRUCTLF_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["HF_HUB_OFFLINE"] = "1"
    for shared in ("INSTRUCTLF_EMBEDDING_CACHE", "INSTRUCTLF_STORAGE"):  # each size: its own storage and cache
        env.pop(shared, None)
    made = provenance(env)
    results, bertopic = [], None
    for size in sizes:
        print(f"{DATASET} at {size} training states ...", file=sys.stderr, flush=True)
        results.append(run_size(size, env, work))
        print(json.dumps({k: results[-1].get(k) for k in ("size", "ok", "end_to_end_s", "peak_rss_mb")}),
              file=sys.stderr, flush=True)  # fmt: skip
        if size == bertopic_size and not args.no_bertopic and results[-1]["ok"]:
            print(f"BERTopic fit_transform at {size} ...", file=sys.stderr, flush=True)
            bertopic = run_bertopic(results[-1], env)
            print(json.dumps(bertopic), file=sys.stderr, flush=True)
            results[-1]["encoder_sampling"] = encoder_sampling(results[-1]["home"])
            print(json.dumps(results[-1]["encoder_sampling"]), file=sys.stderr, flush=True)
    payload = {
        "provenance": {**made, "catalogue_entry": DATASET, "work": str(work), "quick": args.quick},
        **summary(results, bertopic),
        "bertopic": bertopic,
        "results": results,
    }
    text = json.dumps(payload, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    return 0 if all(r["ok"] for r in results) and (bertopic is None or bertopic["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
