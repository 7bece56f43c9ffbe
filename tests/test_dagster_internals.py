"""The private Dagster names this project relies on still exist where `dagster_internals.py` imports them.

When a Dagster release moves one, this file fails at import with the name that moved, and nothing else needs
reading: the fix is confined to `instructlf_assets/dagster_internals.py`.
"""

import dagster as dg

from instructlf_assets import dagster_internals


def test_the_private_names_resolve_to_what_the_project_uses():
    assert callable(dagster_internals.raise_execution_interrupts)
    assert callable(dagster_internals.iterate_with_context)
    assert hasattr(dagster_internals.AssetGraph, "get")


def test_stale_status_of_a_fresh_instance_is_missing_for_every_stage():
    from definitions import defs
    from instructlf_assets.assets import PIPELINE
    from instructlf_assets.partitions import PARTITIONS_NAME

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["tiny"])
        reader = dagster_internals.StaleStatusReader.for_graph(instance, defs.resolve_asset_graph())
        assert all(reader.is_missing(asset.key, "tiny") for asset in PIPELINE)
        assert not any(reader.is_stale(asset.key, "tiny") for asset in PIPELINE)


def test_no_module_but_dagster_internals_imports_a_private_dagster_name():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(root))
        for folder in ("instructlf_assets", "resources")
        for path in (root / folder).rglob("*.py")
        if path.name != "dagster_internals.py" and "dagster._" in path.read_text()
    ]
    assert offenders == []
