"""`instructlf`: run, plan, inspect and report datasets through the same Dagster instance the UI shows.

`run` never goes around Dagster: it observes the corpus and settings sources, asks Dagster which assets of the
partition are stale or missing, and materializes those (and what depends on them) as a run of the pipeline job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .cli_use import add_use_commands

DEFAULT_HOME = ".dagster_home"
# Notices about Dagster's and libraries' own APIs (beta, deprecated): not about any number this tool reports.
# Everything else stays visible; warnings raised while computing metrics are also kept in the report.
QUIET_WARNING_CATEGORIES = (DeprecationWarning, FutureWarning)
QUIET_DAGSTER_WARNINGS = ("BetaWarning", "PreviewWarning", "SupersessionWarning")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _prepare_environment()
    from .core.errors import InstructLFError

    try:
        return int(args.handler(args) or 0)
    except InstructLFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `instructlf report demo | head -3`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again, and exit 0 like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructlf", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="materialize what is stale or missing for a dataset, then report")
    plan = commands.add_parser("plan", help="show what `run` would do (stages, LLM calls, cost) without doing it")
    for command in (run, plan):
        command.add_argument("dataset")
        command.add_argument("--all", action="store_true", help="materialize every asset, stale or not")
        command.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="YAML of asset config, as in the Launchpad: {ops: {compatibility_encoder: {config: {epochs: 2}}}}",
        )
    run.add_argument("--dry-run", action="store_true", help="print the plan and stop (same as `plan`)")
    run.add_argument("--json", action="store_true", help="end with the report as one JSON object")
    run.set_defaults(handler=_run)
    plan.set_defaults(handler=_plan)
    report = commands.add_parser("report", help="print a dataset's factors and metrics")
    report.add_argument("dataset")
    report.add_argument("--json", action="store_true", help="one JSON object: factors and metrics")
    report.set_defaults(handler=_report)
    datasets = commands.add_parser("datasets", help="list the catalogue")
    datasets.set_defaults(handler=_datasets)
    ui = commands.add_parser("ui", help="start `dagster dev` on the same instance")
    ui.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1 (default: %(default)s)")
    ui.set_defaults(handler=_ui)
    add_use_commands(commands)
    return parser


def _version() -> str:
    from importlib import metadata

    return metadata.version("instructlf")


def _prepare_environment() -> None:
    """One Dagster instance for the CLI and the UI: $DAGSTER_HOME, else ./.dagster_home (telemetry off)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / DEFAULT_HOME))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # model loading bars would bury the CLI's report
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars (model cards, trainers): the CLI has its own
    for category in QUIET_WARNING_CATEGORIES:
        warnings.filterwarnings("ignore", category=category)
    _quiet_dagster_api_notices()
    _initialise_instance(home)


def _quiet_dagster_api_notices() -> None:
    import dagster as dg

    for name in QUIET_DAGSTER_WARNINGS:
        category = getattr(dg, name, None)
        if isinstance(category, type) and issubclass(category, Warning):
            warnings.filterwarnings("ignore", category=category)


def _initialise_instance(home: Path) -> None:
    """Create a fresh home's SQLite storages once, under a file lock.

    Two commands started at the same moment on a new home would otherwise both run Dagster's schema setup, and
    one of them failed with "UNIQUE constraint failed: alembic_version" (seen with two partitions run at once).
    """
    marker = home / ".instructlf-initialised"
    if marker.exists():
        return
    import fcntl

    import dagster as dg

    with open(home / ".instructlf-init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            with dg.DagsterInstance.get():
                pass
            marker.touch()


def _datasets(args: argparse.Namespace) -> int:
    from .core.catalogue import catalogue_dir, load_catalogue

    entries, errors = load_catalogue()
    print(f"catalogue: {catalogue_dir()}")
    for name, spec in sorted(entries.items()):
        print(f"  {name:<12} task={spec.task.type:<16} goal: {spec.goal}")
    for name, message in sorted(errors.items()):
        print(f"  {name:<12} INVALID: {message}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _plan(args)
    from .core.catalogue import get_dataset

    get_dataset(args.dataset)
    import dagster as dg

    from definitions import defs, reconstructable_pipeline

    from .orchestration import materialize_partition

    asset_config = _asset_config(args.config) if args.config else None
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        outcome = materialize_partition(
            instance,
            defs,
            args.dataset,
            force=args.all,
            announce=print,
            asset_config=asset_config,
            reconstructable_job=reconstructable_pipeline,
            progress=lambda line: print(line, flush=True),
        )
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)
        return 1
    if outcome.materialized:
        print(f"materialized {', '.join(outcome.materialized)} in {time.perf_counter() - started:.0f} s")
    else:
        print(f"dataset '{args.dataset}' is up to date; nothing to materialize")
    for line in outcome.warnings:
        print(f"warning: {line}")
    return _report(argparse.Namespace(dataset=args.dataset, json=args.json), observed=True)


def _plan(args: argparse.Namespace) -> int:
    """Observe the inputs and print what `run` would materialize and why, and what proposals would cost."""
    from .core.catalogue import get_dataset

    spec = get_dataset(args.dataset)
    import dagster as dg

    from definitions import defs

    from .orchestration import effective_config, observe, plan_partition
    from .partitions import ensure_partition
    from .proposal_plan import proposal_plan_lines

    asset_config = _asset_config(args.config) if args.config else None
    effective_config(asset_config or {})
    with dg.DagsterInstance.get() as instance:
        ensure_partition(instance, args.dataset)
        error = observe(instance, defs, args.dataset)
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        plan = plan_partition(instance, defs, args.dataset, args.all, asset_config)
    for name, diff in plan.config_reset.items():
        print(f"note: {name} was last made with {diff}; `run` without the same --config uses its defaults")
    if not plan.stages:
        print(f"dataset '{args.dataset}' is up to date; `instructlf run {args.dataset}` would materialize nothing")
        return 0
    print(f"`instructlf run {args.dataset}` would materialize:")
    for name, reason in plan.stages:
        config = plan.ops.get(name, {}).get("config")
        print(f"  {name:<22} {reason}" + (f" [config {config}]" if config else ""))
    if "property_proposals" in plan.stage_names:
        for line in proposal_plan_lines(defs, spec):
            print(line)
    return 0


def _asset_config(path: Path) -> dict[str, dict]:
    """The `ops` mapping of a run-config YAML file; the schema itself is checked by Dagster at launch."""
    import yaml

    from .core.errors import RunConfigError

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RunConfigError(f"--config {path}: cannot read YAML ({exc})") from None
    if not isinstance(loaded, dict) or set(loaded) - {"ops"} or not isinstance(loaded.get("ops", {}), dict):
        raise RunConfigError(f"--config {path}: expected a mapping with one key 'ops' (asset name -> {{config: ...}})")
    return loaded.get("ops", {})


def _report(args: argparse.Namespace, observed: bool = False) -> int:
    """`observed`: the caller observed the inputs a moment ago (`run`), so the report need not again."""
    from .core.catalogue import get_dataset

    get_dataset(args.dataset)
    import dagster as dg

    from definitions import defs

    from .orchestration import observe
    from .partitions import PARTITIONS_NAME
    from .report import build_report, format_report

    with dg.DagsterInstance.get() as instance:
        if not observed and instance.has_dynamic_partition(PARTITIONS_NAME, args.dataset):
            # Observing first makes the report's "outdated" lines true of the corpus and catalogue as they are now.
            error = observe(instance, defs, args.dataset)
            if error:
                print(f"warning: could not observe the inputs ({error}); outdated stages may not be listed")
        report = build_report(instance, defs, args.dataset)
    if report is None:
        print(
            f"error: dataset '{args.dataset}' has no results yet; run `instructlf run {args.dataset}`",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _ui(args: argparse.Namespace) -> int:
    import definitions

    workspace = Path(definitions.__file__).with_name("workspace.yaml")
    command = ["dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(command)}")
    os.chdir(workspace.parent)
    os.execvp(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
