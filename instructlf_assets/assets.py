"""The asset graph in one list, in lineage order."""

from __future__ import annotations

import dagster as dg

from .documents import raw_documents
from .encoder import compatibility_encoder
from .evaluation import downstream_evaluation
from .factors import latent_factors
from .proposals import property_proposals
from .scores import property_scores
from .sources import corpus_file, goal_spec
from .vocabulary import property_vocabulary

SOURCES = [goal_spec, corpus_file]
PIPELINE = [
    raw_documents,
    property_proposals,
    property_vocabulary,
    compatibility_encoder,
    property_scores,
    latent_factors,
    downstream_evaluation,
]
PIPELINE_JOB = "instructlf_pipeline"
OBSERVE_JOB = "observe_sources"

pipeline_job = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.assets(*PIPELINE),
    description="Every Instruct-LF stage for one dataset partition.",
)
observe_job = dg.define_asset_job(
    OBSERVE_JOB,
    selection=dg.AssetSelection.keys(*(source.key for source in SOURCES)),
    description="Observe the goal and corpus hashes, so changed inputs mark their dependants stale.",
)
