"""Lineage-driven recomputation, read back from the Dagster instance's event log."""

import shutil

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
    """The shipped demo entry, shrunk to 100 reviews so each refresh takes seconds, not minutes."""
    catalogue = tmp_path_factory.mktemp("catalogue")
    entry = (REPO / "datasets" / "demo.yaml").read_text().replace("n_documents: 400", "n_documents: 100")
    (catalogue / "demo.yaml").write_text(entry)
    home = tmp_path_factory.mktemp("home")
    first = run_cli(["run", "demo"], home, catalogue)
    assert first.returncode == 0, first.stderr[-3000:]
    return catalogue, home


def test_goal_change_recomputes_proposals_and_below_but_not_documents(small_demo, tmp_path):
    catalogue, home = small_demo
    before = materialization_counts(home)
    entry = catalogue / "demo.yaml"
    original = entry.read_text()
    shutil.copy(entry, tmp_path / "demo.yaml")
    entry.write_text(original.replace("make a viewer recommend it", "make a critic praise it"))
    try:
        rerun = run_cli(["run", "demo"], home, catalogue)
    finally:
        entry.write_text(original)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = materialization_counts(home)
    rerun_stages = [stage for stage in STAGES if after[stage] > before[stage]]
    assert rerun_stages == STAGES[1:]
    assert after["raw_documents"] == before["raw_documents"] == 1
