"""Stage 3: the compatibility model Φ, fine-tuned from all-MiniLM-L6-v2 with in-batch negatives."""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.artifacts import EncoderArtifact
from .core.content_version import directory_version
from .core.dedup import Vocabulary, map_proposals
from .core.embedding import Embedder
from .core.encoder_training import (
    TrainingOptions,
    fine_tune,
    projection_head,
    recall_at_k,
    save_model,
    through_head,
    training_pairs,
)
from .partitions import dataset_for
from .publishing import publish
from .sources import base_encoder, encoder_spec, stage_asset

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ASSET = "compatibility_encoder"


class EncoderTrainingConfig(dg.Config):
    """Defaults sized for CPU: ~20 steps of 32 pairs, about half a minute here.

    Why the lower 3 of 6 layers are frozen by default (benchmarks/bench_encoder.py, demo, 2 seeds): training
    took 0.79x the time of tuning all six layers, planted-aspect AMI stayed 1.00 (0.96 with all six), and the
    factor probe's test AUC was 0.835 against 0.816; held-out recall@5 was 0.73 against 0.80. The frozen-encoder
    projection head trains in 0.13x the time and raises recall to 0.69, but it scattered the planted aspects
    over factors (AMI 0.14-0.30), so it stays an option, not the default.
    """

    strategy: Literal["catalogue", "full", "projection_head"] = Field(
        "catalogue",
        description="full: fine-tune the transformer; projection_head: freeze it and learn a linear head on its "
        "embeddings (seconds instead of minutes on CPU, and no second encoder pass when scoring); catalogue: the "
        "dataset entry's `encoder.strategy`.",
    )
    epochs: int = Field(1, ge=1, description="Passes over the (sampled) training pairs.")
    batch_size: int = Field(32, ge=2, description="Pairs per step; the other pairs in a batch are the negatives.")
    learning_rate: float = Field(5e-5, gt=0, description="AdamW learning rate.")
    max_train_pairs: int = Field(640, ge=2, description="Sample at most this many (document, property) pairs.")
    max_seq_length: int = Field(128, ge=16, le=512, description="Word pieces read per text while training.")
    freeze_embeddings: bool = Field(True, description="Freeze the token-embedding table (half the parameters).")
    freeze_layers: int = Field(3, ge=0, le=6, description="Freeze this many lower transformer layers as well.")
    head_epochs: int = Field(20, ge=0, description="projection_head: passes over the pairs.")
    head_learning_rate: float = Field(1e-3, gt=0, description="projection_head: Adam learning rate.")
    head_max_train_pairs: int = Field(
        50_000,
        ge=2,
        description="projection_head: sample at most this many pairs. It trains on cached embeddings, so pairs "
        "cost milliseconds: at 20k ALFWorld states 5,000 pairs took 5 s and raised held-out recall@5 to 0.58, "
        "against 0.45 with 640 and 0.24 for the base model (benchmarks/results/scale_d11bc9d.json). On every "
        "ALFWorld state, proposing from the newest step, next-action accuracy on held-out games rose from 0.696 "
        "with 5,000 to 0.717 with 20,000 and 0.724 with 50,000 (benchmarks/RESULTS.md, newest step).",
    )
    recall_k: int = Field(5, ge=1, description="k of the held-out recall@k reported against the base model.")
    seed: int = Field(0, description="Sampling and training seed.")


def _vocabulary_view(vocabulary: pd.DataFrame) -> Vocabulary:
    mapping = {
        v: pid
        for pid, variants in zip(vocabulary["property_id"], vocabulary["variants"], strict=True)
        for v in variants
    }
    return Vocabulary(vocabulary, mapping, 0, 0, 0)


def mapped_proposals(property_proposals: pd.DataFrame, vocabulary: pd.DataFrame) -> pd.DataFrame:
    return map_proposals(property_proposals, _vocabulary_view(vocabulary))


@stage_asset(
    deps=[base_encoder, encoder_spec],
    # 2: freeze_layers defaults to 3; 3: checks before storing, content data version; 4: strategy and
    # max_seq_length from the catalogue entry, base embeddings through the cache; 5: head_max_train_pairs 50,000
    # (a projection-head setting, but the version is per asset: full-strategy encoders retrain once too)
    code_version="5",
    kinds={"pytorch"},
    pool="gpu",
    check_specs=[
        spec(
            ASSET,
            "beats_base_model",
            "held-out recall@k of the true properties >= the base model's",
            blocking=False,
        )
    ],
)
def compatibility_encoder(
    context: AssetExecutionContext,
    config: EncoderTrainingConfig,
    raw_documents: pd.DataFrame,
    property_proposals: pd.DataFrame,
    property_vocabulary: pd.DataFrame,
    encoder: EncoderResource,
) -> Iterator[object]:
    """The fine-tuned dual encoder Φ (sentence-transformers directory) and its training report."""
    dataset = dataset_for(context)
    options = TrainingOptions(
        strategy=dataset.encoder.strategy if config.strategy == "catalogue" else config.strategy,
        head_epochs=config.head_epochs,
        head_learning_rate=config.head_learning_rate,
        head_max_train_pairs=config.head_max_train_pairs,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_train_pairs=config.max_train_pairs,
        max_seq_length=config.max_seq_length,
        freeze_embeddings=config.freeze_embeddings,
        freeze_layers=config.freeze_layers,
        seed=config.seed,
    )
    proposals = mapped_proposals(property_proposals, property_vocabulary)
    pairs = training_pairs(raw_documents, proposals, property_vocabulary)
    held_out = raw_documents[raw_documents["split"] == "valid"]
    held_out_proposals = proposals[proposals["doc_id"].isin(held_out["doc_id"])]
    base = encoder.base_embedder(dataset.encoder.max_seq_length)
    base_recall = recall_at_k(base, held_out, held_out_proposals, property_vocabulary, config.recall_k)
    model = encoder.load_fresh()
    if dataset.encoder.max_seq_length:
        model.max_seq_length = dataset.encoder.max_seq_length  # what it reads when scoring, and once saved
    limit = options.head_max_train_pairs if options.strategy == "projection_head" else options.max_train_pairs
    n_pairs = min(len(pairs), limit)
    context.log.info(f"fine-tuning on {n_pairs} of {len(pairs)} pairs ({options.strategy})")
    report = fine_tune(model, pairs, options, embed=base)
    tuned = tuned_embedder(model, options.strategy, base, encoder.embedder(model))
    tuned_recall = recall_at_k(tuned, held_out, held_out_proposals, property_vocabulary, config.recall_k)
    summary = {
        **report.__dict__,
        "base_recall_at_k": base_recall,
        "tuned_recall_at_k": tuned_recall,
        "k": config.recall_k,
        "n_held_out_documents": int(held_out_proposals["doc_id"].nunique()),
        "base_encoder": encoder.identity(),  # what a projection head's shortcut must run under (scores.py)
    }
    with tempfile.TemporaryDirectory(prefix="instructlf-encoder-") as scratch:
        save_model(model, Path(scratch))
        yield from publish(
            context,
            EncoderArtifact(Path(scratch), summary),
            version=directory_version(Path(scratch)),
            checks=encoder_checks(base_recall, tuned_recall, config.recall_k),
            config=config,
            metadata={
                "n_pairs_available": len(pairs),
                "n_pairs_trained": report.n_pairs,
                "n_steps": report.n_steps,
                "train_seconds": round(report.seconds, 1),
                "final_loss": report.final_loss if report.final_loss is not None else float("nan"),
                f"base_recall@{config.recall_k}": base_recall,
                f"tuned_recall@{config.recall_k}": tuned_recall,
                "device": encoder.resolved_device(),
            },
        )


def tuned_embedder(model: "SentenceTransformer", strategy: str, base: Embedder, own: Embedder) -> Embedder:
    """The compatibility model's embeddings: a projection head runs over the (cached) base embeddings, so only a
    fully fine-tuned transformer costs another pass over the texts."""
    if strategy == "projection_head":
        return through_head(base, *projection_head(model))
    return own


def encoder_checks(base_recall: float, tuned_recall: float, k: int) -> list[dg.AssetCheckResult]:
    comparison = pd.DataFrame({"tuned": [tuned_recall], "base": [base_recall]})
    return [
        expect(
            "beats_base_model",
            comparison,
            lambda gxe: [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="tuned", column_B="base", or_equal=True)],
            severity=dg.AssetCheckSeverity.WARN,
            explain=f"fine-tuning lowered held-out recall@{k} from {base_recall:.3f} to {tuned_recall:.3f}",
            base_recall=base_recall,
            tuned_recall=tuned_recall,
        )
    ]
