"""Stored artifacts that are not plain tables: each knows how to save itself into, and load from, a directory.

The IO manager writes them atomically (temporary directory, then rename), so a crash never leaves half an artifact.
Which class reads a stored directory is decided here, by a fixed table of short kind names (`ARTIFACT_KINDS`),
never by the stored manifest: a manifest only names a kind, and a kind this table lacks is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class EncoderArtifact:
    """The fine-tuned compatibility model: a sentence-transformers directory plus its training report."""

    model_dir: Path
    report: dict[str, object] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        shutil.copytree(self.model_dir, directory / "model")
        (directory / "report.json").write_text(json.dumps(self.report, indent=2, default=str))

    @classmethod
    def load(cls, directory: Path) -> EncoderArtifact:
        return cls(directory / "model", json.loads((directory / "report.json").read_text()))


@dataclass
class ScoreMatrix:
    """Documents x properties, float32; stored as .npy so readers can memory-map it.

    ``source_file``: an .npy file already holding ``values`` (a matrix streamed to disk). Saving then copies the
    file instead of writing the array, since writing a memory map reads every page of it into this process.
    """

    values: np.ndarray
    doc_ids: np.ndarray
    property_ids: np.ndarray
    source_file: Path | None = None

    def save(self, directory: Path) -> None:
        if self.source_file is not None:
            shutil.copyfile(self.source_file, directory / "scores.npy")
        else:
            np.save(directory / "scores.npy", self.values, allow_pickle=False)
        pd.DataFrame({"doc_id": self.doc_ids}).to_parquet(directory / "rows.parquet")
        pd.DataFrame({"property_id": self.property_ids}).to_parquet(directory / "columns.parquet")

    @classmethod
    def load(cls, directory: Path) -> ScoreMatrix:
        return cls(
            np.load(directory / "scores.npy", mmap_mode="r"),
            pd.read_parquet(directory / "rows.parquet")["doc_id"].to_numpy(),
            pd.read_parquet(directory / "columns.parquet")["property_id"].to_numpy(),
        )


@dataclass
class FactorModel:
    """Fitted Linear CorEx: weights, one factor per property, named factors, and document factor scores.

    ``factor_std``: each factor's total standard deviation on the training data, the divisor of
    `LinearCorex.transform`; with ``mean``, ``scale`` and ``weights`` it scores new documents exactly as the stored
    ones were scored. None for an artifact saved before it was stored (it cannot score new documents).
    """

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    assignments: pd.DataFrame
    factors: pd.DataFrame
    document_scores: pd.DataFrame
    summary: dict[str, object] = field(default_factory=dict)
    factor_std: np.ndarray | None = None

    def save(self, directory: Path) -> None:
        arrays = {"weights": self.weights, "mean": self.mean, "scale": self.scale}
        if self.factor_std is not None:
            arrays["factor_std"] = self.factor_std
        np.savez(directory / "corex.npz", **arrays)
        self.assignments.to_parquet(directory / "assignments.parquet")
        self.factors.to_parquet(directory / "factors.parquet")
        self.document_scores.to_parquet(directory / "document_scores.parquet")
        (directory / "summary.json").write_text(json.dumps(self.summary, indent=2, default=float))

    @classmethod
    def load(cls, directory: Path) -> FactorModel:
        with np.load(directory / "corex.npz") as archive:
            arrays = {name: archive[name] for name in archive.files}
        return cls(
            arrays["weights"],
            arrays["mean"],
            arrays["scale"],
            pd.read_parquet(directory / "assignments.parquet"),
            pd.read_parquet(directory / "factors.parquet"),
            pd.read_parquet(directory / "document_scores.parquet"),
            json.loads((directory / "summary.json").read_text()),
            arrays.get("factor_std"),
        )


@dataclass
class BaselineFeatures:
    """The baselines' document representations (name -> dense array or sparse CSR), one row per document.

    Stored as .npy / .npz, never pickled, so loading one runs no code.
    """

    features: dict[str, object]
    doc_ids: np.ndarray
    info: dict[str, object] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        from scipy import sparse

        kinds = {}
        for name, x in self.features.items():
            if sparse.issparse(x):
                sparse.save_npz(directory / f"{name}.npz", sparse.csr_matrix(x))
                kinds[name] = "sparse"
            else:
                np.save(directory / f"{name}.npy", np.asarray(x), allow_pickle=False)
                kinds[name] = "dense"
        pd.DataFrame({"doc_id": self.doc_ids}).to_parquet(directory / "rows.parquet")
        (directory / "baselines.json").write_text(json.dumps({"kinds": kinds, "info": self.info}, default=str))

    @classmethod
    def load(cls, directory: Path) -> BaselineFeatures:
        from scipy import sparse

        manifest = json.loads((directory / "baselines.json").read_text())
        features: dict[str, object] = {}
        for name, kind in manifest["kinds"].items():
            if kind not in ("dense", "sparse") or not str(name).isidentifier():
                raise ValueError(f"{directory}/baselines.json: unexpected baseline entry {name!r}: {kind!r}")
            features[name] = (
                sparse.load_npz(directory / f"{name}.npz").tocsr()
                if kind == "sparse"
                else np.load(directory / f"{name}.npy", allow_pickle=False)
            )
        return cls(features, pd.read_parquet(directory / "rows.parquet")["doc_id"].to_numpy(), manifest["info"])


# The only classes a stored manifest may name. `table` (a DataFrame as Parquet) is the IO manager's own kind.
ARTIFACT_KINDS: dict[str, type] = {
    "encoder": EncoderArtifact,
    "score_matrix": ScoreMatrix,
    "factor_model": FactorModel,
    "baseline_features": BaselineFeatures,
}

# Manifests written before the registry recorded `module:Class`; the project's own classes map onto their kinds.
LEGACY_KINDS: dict[str, str] = {f"{cls.__module__}:{cls.__qualname__}": name for name, cls in ARTIFACT_KINDS.items()}


def artifact_kind(obj: object) -> str | None:
    """The registered kind name of `obj`'s exact class, or None (a subclass could load as something else)."""
    return next((name for name, cls in ARTIFACT_KINDS.items() if type(obj) is cls), None)
