"""Which stage reads which catalogue setting: the one place that decides what an edit of a dataset re-runs.

Dagster marks an asset stale only when its code version or an input's data version changes, and it never versions
run config or files it does not observe. So every catalogue field that changes an output is declared here under
the first stage that reads it; `sources.py` observes each stage's settings as the data version of one source asset
that only that stage depends on. Editing a field therefore re-runs exactly that stage and what follows it.

A field must be either declared under a stage or listed in `NOT_AN_INPUT` with the reason; a test walks the
catalogue schema and fails on any field that is neither, so a new setting cannot be forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from .catalogue import DatasetSpec

# stage -> the top-level catalogue fields it is the first to read (sub-fields are covered by their parent).
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "raw_documents": ("corpus", "split", "max_text_chars", "text_keep", "limits"),
    "property_proposals": ("goal", "prompt"),
    # `encoder.max_seq_length` changes every embedding, so the `base_encoder` source observes it as well and
    # feeds it to each stage that embeds text; the block as a whole (the strategy) is the encoder's.
    "compatibility_encoder": ("encoder",),
    "latent_factors": ("n_factors",),
    "downstream_evaluation": ("task",),
}

NOT_AN_INPUT: dict[str, str] = {
    "name": "the partition key itself: a renamed entry is another dataset",
    "description": "shown in the UI and `instructlf datasets` only",
}


def stage_settings(spec: DatasetSpec, stage: str) -> dict[str, object]:
    """The catalogue settings `stage` reads, as plain JSON-able values."""
    dumped = spec.model_dump(mode="json")
    return {field: dumped[field] for field in STAGE_FIELDS.get(stage, ()) if field in dumped}


def fingerprint(payload: Mapping[str, object]) -> str:
    """A short, stable hash of JSON-able settings (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def unversioned_fields() -> list[str]:
    """Catalogue fields neither read by a declared stage nor explained away: must be empty."""
    declared = {field for fields in STAGE_FIELDS.values() for field in fields} | set(NOT_AN_INPUT)
    return sorted(set(DatasetSpec.model_fields) - declared)
