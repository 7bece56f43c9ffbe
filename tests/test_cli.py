"""`instructlf` as a user runs it: a real process, a fresh DAGSTER_HOME, the shipped catalogue."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, TEST_CATALOGUE, TEST_DATA

CLI = [sys.executable, "-m", "instructlf_assets.cli"]


def run_cli(
    args, home: Path, catalogue: Path | None = None, timeout: int = 600, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTLF_CATALOGUE", "DAGSTER_HOME")}
    env["DAGSTER_HOME"] = str(home)
    if catalogue is not None:
        env["INSTRUCTLF_CATALOGUE"] = str(catalogue)
    env.update(extra_env or {})
    return subprocess.run([*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    first = run_cli(["run", "demo"], home)
    assert first.returncode == 0, first.stderr[-3000:]
    return home, first


def test_run_demo_prints_factors_and_metrics(demo_home):
    _, first = demo_home
    assert "materialized raw_documents, property_proposals" in first.stdout
    assert "factors/ami_planted_aspects" in first.stdout and "f00" in first.stdout


def test_run_shows_each_stage_as_it_goes_and_no_stray_progress_bars(demo_home):
    _, first = demo_home
    for stage in ("raw_documents", "compatibility_encoder", "downstream_evaluation"):
        assert re.search(rf"\[ *\d+ s\] {stage}: started", first.stdout), stage
        assert re.search(rf"\[ *\d+ s\] {stage}: done in \d+ s", first.stdout), stage
    assert "fine-tuning on" in first.stdout
    assert "it/s]" not in first.stdout + first.stderr and "%|" not in first.stdout + first.stderr


def test_the_report_explains_its_numbers(demo_home):
    home, first = demo_home
    assert "[share of the total correlation they explain]" in first.stdout
    assert re.search(
        r"headline auc/test: factors [\d.]+, best baseline \w+ [\d.]+: the factors (beat|do not beat) it", first.stdout
    )
    payload = json.loads(run_cli(["report", "demo", "--json"], home).stdout)
    assert payload["headline"]["metric"] == "auc/test" and payload["headline"]["best_baseline"]


def test_piping_the_report_into_head_is_quiet_and_exits_0(demo_home):
    home, _ = demo_home
    env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTLF_CATALOGUE",)}
    env["DAGSTER_HOME"] = str(home)
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m instructlf_assets.cli report demo | head -3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 3 and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr


def test_version_and_the_ui_port_default_are_one_command_away(tmp_path):
    version = run_cli(["--version"], tmp_path)
    assert version.returncode == 0 and re.fullmatch(r"instructlf \d+\.\d+\.\d+\n", version.stdout)
    ui_help = run_cli(["ui", "--help"], tmp_path)
    assert "default: 3000" in ui_help.stdout


def test_an_empty_corpus_file_and_an_overlong_goal_name_the_dataset_and_what_to_change(tmp_path):
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (TEST_DATA / "empty").mkdir(exist_ok=True)
    (TEST_DATA / "empty" / "docs.csv").write_text("")
    (catalogue / "hollow.yaml").write_text("goal: What matters here?\ncorpus: {path: empty/docs.csv}\n")
    empty = run_cli(["run", "hollow"], tmp_path / "home", catalogue)
    assert empty.returncode == 1
    [line] = empty.stderr.strip().splitlines()
    assert "dataset 'hollow'" in line and "empty/docs.csv is empty" in line
    (catalogue / "verbose.yaml").write_text("goal: " + "why " * 1250 + "\ncorpus: {path: empty/docs.csv}\n")
    long_goal = run_cli(["run", "verbose"], tmp_path / "home", catalogue)
    assert long_goal.returncode == 1
    [line] = long_goal.stderr.strip().splitlines()
    assert "verbose.yaml" in line and "field 'goal'" in line and "500 characters" in line


def test_report_json_recovers_the_planted_aspects(demo_home):
    home, _ = demo_home
    report = run_cli(["report", "demo", "--json"], home)
    assert report.returncode == 0, report.stderr
    payload = json.loads(report.stdout)
    assert {"factor_id", "name", "properties"} <= set(payload["factors"][0])
    assert payload["metrics"]["factors/ami_planted_aspects"] >= 0.8
    assert all(isinstance(v, float | None) for v in payload["metrics"].values())


def test_second_run_finds_nothing_stale(demo_home):
    home, _ = demo_home
    again = run_cli(["run", "demo"], home)
    assert again.returncode == 0, again.stderr
    assert "up to date; nothing to materialize" in again.stdout


def test_runs_are_in_the_instance_the_ui_reads(demo_home):
    home, _ = demo_home
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            records = instance.fetch_materializations(dg.AssetKey("latent_factors"), limit=5).records
    finally:
        del os.environ["DAGSTER_HOME"]
    assert {r.job_name for r in runs} == {"instructlf_pipeline", "observe_sources"}
    assert records and records[0].partition_key == "demo"


def test_datasets_lists_the_catalogue(tmp_path):
    listing = run_cli(["datasets"], tmp_path)
    assert listing.returncode == 0 and "demo" in listing.stdout and "planted_factors" in listing.stdout


def test_unknown_dataset_is_one_clear_line(tmp_path):
    result = run_cli(["run", "nope"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "unknown dataset 'nope'" in result.stderr


@pytest.fixture
def broken_catalogue(tmp_path):
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (catalogue / "ghost.yaml").write_text("goal: What matters?\ncorpus: {path: ghost/missing.csv}\n")
    (catalogue / "dupes.yaml").write_text("goal: What matters?\ncorpus: {path: dupes.csv, id_field: id}\n")
    pd.DataFrame({"id": ["a", "b", "a"], "text": ["x y z", "y z w", "z w v"]}).to_csv(
        TEST_DATA / "dupes.csv", index=False
    )
    return catalogue


def test_missing_corpus_file_names_dataset_and_path(tmp_path, broken_catalogue):
    result = run_cli(["run", "ghost"], tmp_path / "home", broken_catalogue)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "dataset 'ghost'" in line and "ghost/missing.csv not found" in line


def test_duplicate_ids_name_the_rows(tmp_path, broken_catalogue):
    result = run_cli(["run", "dupes"], tmp_path / "home", broken_catalogue)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "field 'doc_id' has duplicates ['a'] in rows [1, 3]" in line


def test_asset_config_file_is_checked_against_the_assets_schemas(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("ops: {compatibility_encoder: {config: {epochz: 2}}}\n")
    result = run_cli(["run", "tiny", "--config", str(config)], tmp_path / "home", TEST_CATALOGUE)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid asset config:") and "epochz" in line
    config.write_text("compatibility_encoder: {epochs: 2}\n")
    result = run_cli(["run", "tiny", "--config", str(config)], tmp_path / "home", TEST_CATALOGUE)
    assert result.returncode == 1 and "expected a mapping with one key 'ops'" in result.stderr


@pytest.mark.parametrize("kind", ["os:system", "planted_on_path:Thing"])
def test_a_tampered_manifest_makes_report_exit_1_in_one_line_and_imports_nothing(demo_home, tmp_path, kind):
    home, _ = demo_home
    manifest = home / "instructlf" / "latent_factors" / "demo" / "artifact.json"
    original = manifest.read_text()
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "planted_on_path.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing: ...\n")
    manifest.write_text(json.dumps({"kind": kind}))
    try:
        result = run_cli(["report", "demo"], home, extra_env={"PYTHONPATH": str(planted)})
    finally:
        manifest.write_text(original)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and kind in line and "Traceback" not in result.stderr
    assert not marker.exists(), "the manifest got a module imported"


def test_each_demo_factor_scores_higher_where_its_planted_aspect_is_present(demo_home, tmp_path):
    """A factor named after an aspect must mean *more* of it: on the demo, its document scores correlate
    positively with whether the review discusses that aspect, and a new text stating it scores high."""
    from instructlf_assets.core.demo_corpus import planted_aspect
    from resources.storage import read_artifact

    home, _ = demo_home
    model = read_artifact(home / "instructlf" / "latent_factors" / "demo")
    documents = read_artifact(home / "instructlf" / "raw_documents" / "demo").set_index("doc_id")
    scores = model.document_scores.set_index("doc_id").loc[documents.index]
    named = {}
    for row in model.factors.itertuples():
        aspects = [planted_aspect(text) for text in row.top_properties[:5]]
        aspects = [a for a in aspects if a]
        if aspects:
            named[row.factor_id] = max(set(aspects), key=aspects.count)
            present = (documents[f"aspect_{named[row.factor_id]}"] != "absent").astype(float)
            correlation = np.corrcoef(scores[row.factor_id], present)[0, 1]
            assert correlation > 0.3, (row.factor_id, row.name, named[row.factor_id], correlation)
    assert len(set(named.values())) >= 5, named
    visuals = next(factor for factor, aspect in named.items() if aspect == "visuals")
    text = "Every shot is beautifully framed. The cinematography is truly stunning."
    pd.DataFrame({"doc_id": ["new"], "text": [text]}).to_csv(tmp_path / "new.csv", index=False)
    scored = run_cli(["score", "demo", str(tmp_path / "new.csv"), "--out", str(tmp_path / "scored.jsonl")], home)
    assert scored.returncode == 0, scored.stderr
    value = json.loads((tmp_path / "scored.jsonl").read_text())[visuals]
    assert value > np.quantile(scores[visuals], 0.75), (visuals, value)
