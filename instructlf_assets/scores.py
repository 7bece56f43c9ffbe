"""Stage 4: every document scored against every property by the fine-tuned encoder."""

import time
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.artifacts import EncoderArtifact, ScoreMatrix
from .core.scoring import score_matrix
from .sources import stage_asset

ASSET = "property_scores"


class ScoreConfig(dg.Config):
    chunk_size: int = Field(2048, ge=1, description="Documents encoded and multiplied per chunk (bounds memory).")


@stage_asset(
    code_version="1",
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
    model = encoder.load_fresh(str(compatibility_encoder.model_dir))
    values = score_matrix(
        encoder.embedder(model),
        raw_documents["text"].tolist(),
        property_vocabulary["text"].tolist(),
        chunk_size=config.chunk_size,
    )
    matrix = ScoreMatrix(values, raw_documents["doc_id"].to_numpy(), property_vocabulary["property_id"].to_numpy())
    yield dg.Output(
        matrix,
        metadata={
            "n_documents": values.shape[0],
            "n_properties": values.shape[1],
            "seconds": round(time.perf_counter() - started, 2),
            "mean_score": float(values.mean()),
            "megabytes": round(values.nbytes / 2**20, 2),
        },
    )
    yield expect(
        "scores_are_valid",
        row_statistics(values, len(property_vocabulary)),
        _score_expectations(len(raw_documents), len(property_vocabulary)),
    )


def row_statistics(values: np.ndarray, n_expected_columns: int) -> pd.DataFrame:
    """One row per document, so a GX suite can check a matrix without materialising it as a frame."""
    finite = np.isfinite(values)
    safe = np.where(finite, values, 0.0)
    return pd.DataFrame(
        {
            "n_nonfinite": (~finite).sum(axis=1),
            "row_min": safe.min(axis=1) if values.shape[1] else np.zeros(len(values)),
            "row_max": safe.max(axis=1) if values.shape[1] else np.zeros(len(values)),
            "n_columns": np.full(len(values), values.shape[1]),
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
