"""The asset graph in one list, in lineage order."""

from __future__ import annotations

import dagster as dg

from .baselines import BaselineConfig, baseline_representations
from .documents import raw_documents
from .encoder import EncoderTrainingConfig, compatibility_encoder
from .evaluation import EvaluationConfig, downstream_evaluation
from .factors import FactorConfig, latent_factors
from .proposals import ProposalConfig, property_proposals
from .scores import ScoreConfig, property_scores
from .sources import base_encoder, corpus_file, encoder_spec, factor_spec, goal_spec, peer_libraries, task_spec
from .vocabulary import VocabularyConfig, property_vocabulary

SOURCES = [corpus_file, goal_spec, base_encoder, encoder_spec, factor_spec, peer_libraries, task_spec]
PIPELINE = [
    raw_documents,
    property_proposals,
    property_vocabulary,
    compatibility_encoder,
    property_scores,
    latent_factors,
    baseline_representations,
    downstream_evaluation,
]
# Each stage's run config (the Launchpad's `ops: {NAME: {config: ...}}`); raw_documents takes none.
STAGE_CONFIGS: dict[str, type[dg.Config]] = {
    "property_proposals": ProposalConfig,
    "property_vocabulary": VocabularyConfig,
    "compatibility_encoder": EncoderTrainingConfig,
    "property_scores": ScoreConfig,
    "latent_factors": FactorConfig,
    "baseline_representations": BaselineConfig,
    "downstream_evaluation": EvaluationConfig,
}
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
    description="Observe the corpus and every stage's settings, so a changed input marks its dependants stale.",
)
