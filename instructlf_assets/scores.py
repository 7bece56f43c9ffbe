"""Stage 4: every document scored against every property by the fine-tuned encoder."""

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.artifacts import EncoderArtifact, ScoreMatrix
from .core.content_version import array_version, combine
from .core.embedding import Embedder
from .core.encoder_training import has_projection_head, projection_head, through_head
from .core.scoring import score_matrix, score_matrix_to_npy
from .partitions import dataset_for
from .publishing import publish
from .sources import base_encoder, stage_asset

ASSET = "property_scores"


class ScoreConfig(dg.Config):
    chunk_size: int = Field(2048, ge=1, description="Documents encoded and multiplied per chunk (bounds memory).")
    stream_above_mb: float = Field(
        512,
        ge=0,
        description="A matrix larger than this (float32) is streamed chunk by chunk to a scratch .npy file and "
        "copied into storage from there, so building it holds one chunk in memory, not the matrix.",
    )


@stage_asset(
    deps=[base_encoder],
    code_version="3",  # 2: checks before storing; content data version; 3: cached / projection-head embeddings
    kinds={"pytorch", "numpy"},
    pool="gpu",
    check_specs=[spec(ASSET, "scores_are_valid", "finite, in [-1, 1], shape matches documents x properties")],
)
def property_scores(
    context: AssetExecutionContext,
    config: ScoreConfig,
    raw_documents: pd.DataFrame,
    property_vocabulary: pd.DataFrame,
    compatibility_encoder: EncoderArtifact,
    encoder: EncoderResource,
) -> Iterator[object]:
    """Documents x properties matrix of Φ(document)ᵀΦ(property), float32, stored as .npy."""
    started = time.perf_counter()
    embed = compatibility_embedder(compatibility_encoder, encoder, dataset_for(context).encoder.max_seq_length)
    documents, properties = raw_documents["text"].tolist(), property_vocabulary["text"].tolist()
    streamed = len(documents) * len(properties) * 4 / 2**20 > config.stream_above_mb
    with tempfile.TemporaryDirectory(prefix="instructlf-scores-") as scratch:
        source = Path(scratch) / "scores.npy" if streamed else None
        if source is not None:
            values = score_matrix_to_npy(embed, documents, properties, source, config.chunk_size)
        else:
            values = score_matrix(embed, documents, properties, chunk_size=config.chunk_size)
        rows = row_statistics(values)
        doc_ids, property_ids = raw_documents["doc_id"].to_numpy(), property_vocabulary["property_id"].to_numpy()
        yield from publish(  # stored (copied out of the scratch file) before the generator resumes
            context,
            ScoreMatrix(values, doc_ids, property_ids, source),
            version=combine(
                array_version(values), array_version(doc_ids.astype(str)), array_version(property_ids.astype(str))
            ),
            checks=score_checks(rows, len(raw_documents), len(property_vocabulary)),
            config=config,
            metadata={
                "n_documents": values.shape[0],
                "n_properties": values.shape[1],
                "seconds": round(time.perf_counter() - started, 2),
                "mean_score": float(rows["row_sum"].sum() / max(values.size, 1)),
                "megabytes": round(values.nbytes / 2**20, 2),
                "built": "streamed to disk" if streamed else "in memory",
            },
        )


def compatibility_embedder(artifact: EncoderArtifact, encoder: EncoderResource, max_seq_length: int | None) -> Embedder:
    """Φ for scoring. A projection head trained on this base model runs over the base embeddings the proposer
    already computed (cached), at the truncation the stored model reads; anything else (a fully fine-tuned
    transformer, a head from another base model) runs the stored model itself, uncached: its vectors are
    never asked for again, since a new vocabulary retrains the encoder."""
    model = encoder.load_fresh(str(artifact.model_dir))
    if max_seq_length:
        model.max_seq_length = max_seq_length
    strategy = str(dict(artifact.report.get("options") or {}).get("strategy", "full"))
    same_base = artifact.report.get("base_encoder") == encoder.identity()
    if strategy == "projection_head" and same_base and has_projection_head(model):
        return through_head(encoder.base_embedder(model.max_seq_length), *projection_head(model))
    return encoder.embedder(model)


def score_checks(rows: pd.DataFrame, n_documents: int, n_properties: int) -> list[dg.AssetCheckResult]:
    bad = rows[(rows["n_nonfinite"] > 0) | (rows["row_min"] < -1) | (rows["row_max"] > 1)]
    return [
        expect(
            "scores_are_valid",
            rows.drop(columns="row_sum"),
            _score_expectations(n_documents, n_properties),
            explain=f"{len(bad)} document row(s) hold NaN/inf or scores outside [-1, 1], or the shape is not "
            f"{n_documents} x {n_properties}: the encoder is degenerate",
        )
    ]


def row_statistics(values: np.ndarray, chunk_rows: int = 4096) -> pd.DataFrame:
    """One row per document, so a GX suite can check a matrix without materialising it as a frame.

    Read a block of rows at a time: on a memory-mapped matrix, whole-array temporaries (the finite mask, the
    NaN-free copy) would each cost as much memory as the matrix.
    """
    blocks = [_block_statistics(values[start : start + chunk_rows]) for start in range(0, len(values), chunk_rows)]
    columns = ["n_nonfinite", "row_min", "row_max", "row_sum"]
    frame = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame({c: [] for c in columns})
    frame["n_columns"] = values.shape[1]
    return frame


def _block_statistics(block: np.ndarray) -> pd.DataFrame:
    block = np.asarray(block)
    finite = np.isfinite(block)
    safe = np.where(finite, block, 0.0)
    empty = np.zeros(len(block))
    return pd.DataFrame(
        {
            "n_nonfinite": (~finite).sum(axis=1),
            "row_min": safe.min(axis=1) if block.shape[1] else empty,
            "row_max": safe.max(axis=1) if block.shape[1] else empty,
            "row_sum": safe.sum(axis=1, dtype=np.float64),
        }
    )


def _score_expectations(n_rows: int, n_columns: int):
    def build(gxe):
        return [
            gxe.ExpectTableRowCountToEqual(value=n_rows),
            gxe.ExpectColumnValuesToBeInSet(column="n_columns", value_set=[n_columns]),
            gxe.ExpectColumnValuesToBeBetween(column="n_nonfinite", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="row_min", min_value=-1.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="row_max", min_value=-1.0, max_value=1.0),
        ]

    return build
