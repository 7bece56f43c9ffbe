"""Scoring new documents with a dataset's fitted model: no refit, no LLM, one encoder pass over the documents.

A `FittedModel` is what the pipeline stored for a dataset: the fine-tuned encoder, the property vocabulary and
the Linear CorEx factor model. `transform(texts)` runs the `property_scores` stage's computation on the new texts
(`score_matrix` with the same encoder and vocabulary) and then the factor model's own transform, so scoring the
training documents again reproduces the stored document factor scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import FactorModel
from .catalogue import DatasetSpec, FileCorpus
from .corpus import clean_documents, read_file_corpus
from .embedding import encode, load_encoder
from .errors import InstructLFError
from .scoring import score_matrix

DEFAULT_TOP_K = 5
FORMATS = ("csv", "jsonl", "parquet")
# Without an id field (given, or the dataset's corpus.id_field), a file of new documents keeps the ids of this column.
ID_COLUMNS = ("doc_id",)


class ModelNotReadyError(InstructLFError):
    """A dataset's stored model is missing, incomplete or inconsistent, so new documents cannot be scored."""


@dataclass
class FittedModel:
    """A dataset's encoder directory, property vocabulary and factor model, ready to score new documents."""

    encoder_dir: Path
    vocabulary: pd.DataFrame
    factors: FactorModel
    dataset: str = "?"
    batch_size: int = 64
    chunk_size: int = 2048
    device: str = "auto"
    _encoder: object = field(default=None, init=False, repr=False)
    _property_vectors: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.factors.factor_std is None:
            raise ModelNotReadyError(
                f"dataset '{self.dataset}': its latent_factors artifact predates stored factor scales (factor_std) "
                f"and cannot score new documents; re-materialize latent_factors (`instructlf run {self.dataset} "
                "--all`, or Materialize latent_factors in the UI)"
            )
        if not self.factors.summary.get("oriented"):
            raise ModelNotReadyError(
                f"dataset '{self.dataset}': its latent_factors artifact predates oriented factors (a score could "
                f"mean the opposite of its factor's name); re-materialize latent_factors (`instructlf run "
                f"{self.dataset}`)"
            )
        fitted_on = self.factors.assignments["property_id"].astype(str).tolist()
        if self.vocabulary["property_id"].astype(str).tolist() != fitted_on:
            raise ModelNotReadyError(
                f"dataset '{self.dataset}': the stored property_vocabulary is not the one latent_factors was fitted "
                f"on ({len(self.vocabulary)} vs {len(fitted_on)} properties); `instructlf run {self.dataset}` "
                "brings them back in step"
            )

    @property
    def factor_ids(self) -> list[str]:
        """Factor ids in the order of the factor model's rows (the stored document scores' columns)."""
        return [c for c in self.factors.document_scores.columns if c != "doc_id"]

    @property
    def properties(self) -> list[str]:
        return self.vocabulary["text"].astype(str).tolist()

    def property_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Documents x properties cosine scores, float32: the `property_scores` stage's computation."""
        return score_matrix(self._embed, list(texts), self.properties, chunk_size=self.chunk_size)

    def factor_scores(self, property_scores: np.ndarray) -> np.ndarray:
        """Documents x factors, float32: `LinearCorex.transform` from the stored mean, scale, weights, factor_std."""
        model = self.factors
        standardized = (np.asarray(property_scores, dtype=np.float64) - model.mean) / model.scale
        projected = standardized @ model.weights.T.astype(np.float64)
        return (projected / np.asarray(model.factor_std, dtype=np.float64)).astype(np.float32)

    def transform(
        self, texts: Iterable[str] | pd.Series, doc_ids: Sequence[object] | None = None, top_k: int = DEFAULT_TOP_K
    ) -> pd.DataFrame:
        """One row per text: `doc_id`, each factor's score, and `top_properties` ([text, score] pairs, best first).

        A pandas Series keeps its index as `doc_id` unless `doc_ids` is given; a list is numbered from 0.
        """
        if isinstance(texts, pd.Series):
            ids = list(texts.index) if doc_ids is None else list(doc_ids)
            texts = texts.astype(str).tolist()
        else:
            texts = [str(t) for t in texts]
            ids = list(range(len(texts))) if doc_ids is None else list(doc_ids)
        if len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} doc_ids")
        if not texts:
            return pd.DataFrame(columns=["doc_id", *self.factor_ids, "top_properties"])
        scores = self.property_scores(texts)
        table = pd.DataFrame(self.factor_scores(scores), columns=self.factor_ids)
        table.insert(0, "doc_id", ids)
        table["top_properties"] = top_properties(scores, self.properties, top_k)
        return table

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        # score_matrix encodes the vocabulary on every call; it is the same every time, so encode it once.
        if self._property_vectors is not None and list(texts) == self.properties:
            return self._property_vectors
        if self._encoder is None:  # this model's own copy: the process-wide cache could hold an older directory
            self._encoder = load_encoder.__wrapped__(str(self.encoder_dir), self.device)
        vectors = encode(self._encoder, texts, self.batch_size)
        if self._property_vectors is None and list(texts) == self.properties:
            self._property_vectors = vectors
        return vectors


def top_property_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Per document (row), the column indices of its `k` highest scores, best first."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((len(scores), 0), dtype=np.int64)
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1), axis=1)


def top_properties(scores: np.ndarray, properties: Sequence[str], k: int) -> list[list[list[object]]]:
    """Per document, its `k` highest-scoring properties as [text, score] pairs, best first."""
    order = top_property_columns(scores, k)
    return [
        [[properties[j], round(float(row[j]), 4)] for j in columns] for row, columns in zip(scores, order, strict=True)
    ]


def read_documents(
    path: Path,
    spec: DatasetSpec,
    id_field: str | None = None,
    text_field: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """`doc_id`, `text` of a CSV / JSONL / Parquet file, read, checked and truncated as the dataset's corpus is,
    and the sha256 of the bytes they were read from (the file is read once, within the dataset's `limits`).

    Field names default to the dataset's `corpus` settings (a file corpus), else `text`, and ids to a `doc_id`
    column when the file has one, else row numbers.
    """
    if not path.is_file():
        raise InstructLFError(f"input file {path} not found (documents to score for dataset '{spec.name}')")
    corpus = spec.corpus if isinstance(spec.corpus, FileCorpus) else None
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InstructLFError(f"cannot read {path}: unknown format '{fmt}' (use .csv, .jsonl or .parquet)")
    # model_construct: the catalogue's validator keeps corpus paths inside the data directory; this file is the
    # user's own input, named on the command line or by a batch partition.
    reading = FileCorpus.model_construct(
        path=str(path),
        format=fmt if fmt in FORMATS else None,
        encoding=corpus.encoding if corpus else "utf-8",
        id_field=id_field or (corpus.id_field if corpus else None),
        text_field=text_field or (corpus.text_field if corpus else "text"),
        label_fields=(),
        split_field=None,
        max_documents=None,
    )
    frame, digest = read_file_corpus(spec.name, reading, path, spec.limits, id_candidates=ID_COLUMNS)
    frame = clean_documents(spec.name, str(path), frame, spec.max_text_chars, spec.text_keep)
    return frame[["doc_id", "text"]].reset_index(drop=True), digest


def check_writable_format(path: Path) -> str:
    """The output format a path's suffix names; refused before any work when it is not one `write_table` writes."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InstructLFError(f"cannot write {path}: unknown format '{fmt}' (use .csv, .jsonl or .parquet)")
    return fmt


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write by suffix: .csv, .jsonl or .parquet; list cells become JSON strings where the format has no lists."""
    fmt = check_writable_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":  # json itself, not pandas' to_json: that rounds floats to 10 digits
        with path.open("w", encoding="utf-8") as handle:
            for record in table.to_dict(orient="records"):
                handle.write(json.dumps({str(k): _plain(v) for k, v in record.items()}, ensure_ascii=False) + "\n")
        return
    flat = lists_as_json(table)
    if fmt == "csv":
        flat.to_csv(path, index=False)
    else:
        flat.to_parquet(path, index=False)


def lists_as_json(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose list-valued columns (`top_properties`: [text, score] pairs) are JSON strings, which CSV and
    Parquet can hold (Parquet has no list of mixed types)."""
    flat = table.copy()
    for column in flat.columns:
        if flat[column].dtype == object and flat[column].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            flat[column] = flat[column].map(lambda v: json.dumps(_plain(v), ensure_ascii=False))
    return flat


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
