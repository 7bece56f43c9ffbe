"""Lineage that tells the truth: each setting re-runs exactly the stages that read it, read back from the event log.

One small demo dataset is materialized once; each test then edits one class of setting, runs `instructlf run` as a
user would, and asserts which stages were materialized again and that the report shows the new value. The edits
accumulate (each test starts from the state the previous one left, which is up to date).
"""

import json

import dagster as dg
import pytest

from tests.conftest import REPO, STAGES
from tests.test_cli import run_cli


def materialization_counts(home) -> dict[str, int]:
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        return {stage: len(instance.fetch_materializations(dg.AssetKey(stage), limit=100).records) for stage in STAGES}
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """The shipped demo entry, shrunk to 60 reviews so each refresh takes seconds, not minutes."""
    catalogue = tmp_path_factory.mktemp("catalogue")
    entry = (REPO / "datasets" / "demo.yaml").read_text().replace("n_documents: 400", "n_documents: 60")
    (catalogue / "demo.yaml").write_text(entry)
    home = tmp_path_factory.mktemp("home")
    first = run_cli(["run", "demo"], home, catalogue)
    assert first.returncode == 0, first.stderr[-3000:]
    return catalogue, home


def rerun_after(small_demo, edit: tuple[str, str] | None = None, args: tuple[str, ...] = ()) -> tuple[list, dict]:
    """Apply one catalogue edit, `instructlf run demo [args]`; the stages materialized again and the report."""
    catalogue, home = small_demo
    entry = catalogue / "demo.yaml"
    if edit is not None:
        old, new = edit
        assert old in entry.read_text(), old
        entry.write_text(entry.read_text().replace(old, new))
    before = materialization_counts(home)
    run = run_cli(["run", "demo", "--json", *args], home, catalogue)
    assert run.returncode == 0, run.stderr[-3000:]
    after = materialization_counts(home)
    report = json.loads(run.stdout[run.stdout.index("\n{") :])
    return [stage for stage in STAGES if after[stage] > before[stage]], report


def test_a_fresh_run_leaves_nothing_outdated_and_says_how_it_was_made(small_demo):
    catalogue, home = small_demo
    report = json.loads(run_cli(["report", "demo", "--json"], home, catalogue).stdout)
    made = report["provenance"]
    assert made["up_to_date"] and made["stale"] == {}
    assert made["goal"].startswith("What aspects of a movie")
    assert made["proposer"]["backend"] == "offline"
    stages = made["stages"]
    assert set(stages) == set(STAGES)
    assert len({stage["run_id"] for stage in stages.values()}) == 1
    assert stages["latent_factors"]["config"]["max_iter"] == 1000 and stages["latent_factors"]["code_version"]
    text = run_cli(["report", "demo"], home, catalogue).stdout
    assert "goal: What aspects of a movie" in text and "proposer: backend offline" in text


def test_goal_change_recomputes_proposals_and_below_but_not_documents(small_demo):
    rerun, report = rerun_after(small_demo, ("make a viewer recommend it", "make a critic praise it"))
    assert rerun == STAGES[1:]
    assert "make a critic praise it" in report["provenance"]["goal"]


def test_n_factors_change_recomputes_factors_and_evaluation_only(small_demo):
    rerun, report = rerun_after(small_demo, ("n_factors: 6", "n_factors: 5"))
    assert rerun == ["latent_factors", "baseline_representations", "downstream_evaluation"]
    assert len(report["factors"]) == 5
    assert report["provenance"]["stages"]["latent_factors"]["settings"] == {"n_factors": 5}


def test_task_change_recomputes_only_the_evaluation(small_demo):
    rerun, report = rerun_after(small_demo, ("target: recommended", "target: recommended\n  min_class_size: 4"))
    assert rerun == ["downstream_evaluation"]
    assert report["provenance"]["stages"]["downstream_evaluation"]["settings"]["task"]["min_class_size"] == 4


def test_corpus_reading_setting_recomputes_everything_from_the_documents(small_demo):
    rerun, report = rerun_after(small_demo, ("seed: 0\nsplit:", "seed: 0\nmax_text_chars: 300\nsplit:"))
    assert rerun == STAGES
    assert report["provenance"]["stages"]["raw_documents"]["settings"]["max_text_chars"] == 300


def test_asset_config_on_the_command_line_reruns_that_stage_and_below_and_is_never_dropped(small_demo, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("ops: {latent_factors: {config: {max_iter: 400}}}\n")
    rerun, report = rerun_after(small_demo, args=("--config", str(config)))
    assert rerun == ["latent_factors", "baseline_representations", "downstream_evaluation"]
    assert report["provenance"]["stages"]["latent_factors"]["config"]["max_iter"] == 400
    catalogue, home = small_demo
    again = run_cli(["run", "demo", "--config", str(config)], home, catalogue)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "--config for latent_factors is the config its stored version was made with" in again.stdout
    text = run_cli(["report", "demo"], home, catalogue).stdout
    assert "config: latent_factors max_iter=400" in text


def test_config_for_something_that_is_not_a_stage_is_refused_in_one_line(small_demo, tmp_path):
    catalogue, home = small_demo
    config = tmp_path / "run.yaml"
    config.write_text("ops: {raw_documents: {config: {x: 1}}, latent_factor: {config: {max_iter: 3}}}\n")
    result = run_cli(["run", "demo", "--config", str(config)], home, catalogue)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "'raw_documents', which takes no config" in line


def test_a_failed_blocking_check_stores_nothing_and_the_next_run_recomputes_the_stage(small_demo):
    catalogue, home = small_demo
    entry = catalogue / "demo.yaml"
    entry.write_text(entry.read_text().replace("n_documents: 60", "n_documents: 12"))
    before = materialization_counts(home)
    failed = run_cli(["run", "demo"], home, catalogue)
    assert failed.returncode == 1
    assert "splits_are_usable" in failed.stderr and "split.valid_fraction" in failed.stderr
    assert materialization_counts(home) == before
    plan = run_cli(["plan", "demo"], home, catalogue)
    assert plan.returncode == 0 and "raw_documents" in plan.stdout and "stale" in plan.stdout
    report = json.loads(run_cli(["report", "demo", "--json"], home, catalogue).stdout)
    assert "raw_documents" in report["provenance"]["stale"] and not report["provenance"]["up_to_date"]
