"""Stable factor ids across refits: each new factor takes the id of the previous factor it shares most with.

A refit (another seed, an appended corpus, a new vocabulary) numbers CorEx components arbitrarily, so `f03` of one
materialization may be `f01` of the next. Here a factor is the set of property *texts* assigned to it, each
weighted by its share of the factor's mutual information (property ids are renumbered whenever the vocabulary
changes; texts are not). The overlap of two factors is the weight mass they have in common, in [0, 1]. A one-to-one
assignment (Hungarian, `linear_sum_assignment`) pairs new factors with previous ones; a pair with enough overlap
keeps the previous id, every other new factor gets a fresh id above any id this partition ever used, so a
reader never confuses a new factor with one that went away.

Weights rows (and any other per-factor array of the model) are stored in ascending id order: row `i` is the factor
with the `i`-th smallest id (`weight_rows`). A first fit (`f00`..`fNN`, rows in component order) already is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .artifacts import FactorModel

# Below a third of shared weight mass the two factors are mostly about different properties: calling them the
# same factor would mislead a reader more than a new id does.
MATCH_THRESHOLD = 0.3
# From 0.8 on, the top properties of the two factors are (nearly) the same; below, a reader should look again.
KEEP_THRESHOLD = 0.8
# Arrays of a FactorModel that run along properties, not factors (never permuted, even when both counts agree).
_PER_PROPERTY_FIELDS = frozenset({"mean", "scale"})
_TOP_SHOWN = 3

DRIFT_COLUMNS = ["factor_id", "status", "overlap", "compared_with", "previous_top_properties", "top_properties"]


@dataclass(frozen=True)
class FactorDrift:
    """How the factors of a refit relate to the previous materialization's; `table` has `DRIFT_COLUMNS`."""

    table: pd.DataFrame
    first_fit: bool

    def counts(self) -> dict[str, int]:
        statuses = self.table["status"]
        return {f"n_{status}": int((statuses == status).sum()) for status in ("kept", "changed", "new", "gone")}


def factor_number(factor_id: str) -> int:
    return int(factor_id[1:])


def factor_label(number: int) -> str:
    return f"f{number:02d}"


def weight_rows(model: FactorModel) -> dict[str, int]:
    """Each factor id's row in `model.weights` (rows are in ascending id order)."""
    ids = sorted(model.factors["factor_id"], key=factor_number)
    return {factor_id: row for row, factor_id in enumerate(ids)}


def factor_profiles(assignments: pd.DataFrame) -> dict[str, dict[str, float]]:
    """factor id -> {property text: its share of the factor's mutual information}, shares summing to 1."""
    profiles: dict[str, dict[str, float]] = {}
    for factor_id, members in assignments.groupby("factor_id", sort=False):
        weights = members.groupby("text")["mutual_information"].sum().clip(lower=0.0)
        # A factor whose properties carry no information still is its properties: weigh them equally.
        shares = weights / weights.sum() if weights.sum() > 0 else pd.Series(1.0 / len(weights), index=weights.index)
        profiles[str(factor_id)] = {str(text): float(share) for text, share in shares.items()}
    return profiles


def overlap(a: dict[str, float], b: dict[str, float]) -> float:
    """The weight mass two factor profiles share: 1 for the same properties in the same proportions, 0 for none."""
    return float(sum(min(share, b[text]) for text, share in a.items() if text in b))


def overlap_matrix(previous: list[dict[str, float]], new: list[dict[str, float]]) -> np.ndarray:
    return np.array([[overlap(p, n) for n in new] for p in previous], dtype=np.float64).reshape(len(previous), len(new))


def stabilize_ids(previous: FactorModel | None, fitted: FactorModel) -> tuple[FactorModel, FactorDrift]:
    """`fitted` with its factors renamed after `previous`'s (see the module docstring), and the drift between them."""
    new_ids = list(fitted.factors["factor_id"])
    if previous is None:
        stable = _renamed(fitted, {i: i for i in new_ids}, max(map(factor_number, new_ids), default=-1))
        return stable, FactorDrift(_drift_rows(stable, {}, {i: (None, 0.0) for i in new_ids}, [], "new"), True)
    previous_ids = list(previous.factors["factor_id"])
    old_profiles, new_profiles = factor_profiles(previous.assignments), factor_profiles(fitted.assignments)
    scores = overlap_matrix([old_profiles.get(i, {}) for i in previous_ids], [new_profiles.get(i, {}) for i in new_ids])
    rows, columns = linear_sum_assignment(scores, maximize=True)
    matched = {
        new_ids[c]: previous_ids[r] for r, c in zip(rows, columns, strict=True) if scores[r, c] >= MATCH_THRESHOLD
    }
    next_number = max([_max_number(previous), *map(factor_number, previous_ids)]) + 1
    renamed: dict[str, str] = {}
    for factor_id in new_ids:  # in tc order, so the strongest new factor gets the lowest fresh number
        if factor_id in matched:
            renamed[factor_id] = matched[factor_id]
        else:
            renamed[factor_id], next_number = factor_label(next_number), next_number + 1
    comparison = {
        factor_id: _compared(scores[:, c], previous_ids, matched.get(factor_id)) for c, factor_id in enumerate(new_ids)
    }
    stable_ids = [renamed[i] for i in new_ids]
    gone = [
        (factor_id, *_compared(scores[r], stable_ids, None))
        for r, factor_id in enumerate(previous_ids)
        if factor_id not in matched.values()
    ]
    stable = _renamed(fitted, renamed, next_number - 1)
    drift = _drift_rows(stable, _top_by_id(previous), {renamed[i]: c for i, c in comparison.items()}, gone, None)
    return stable, FactorDrift(drift, False)


def _max_number(model: FactorModel) -> int:
    stored = model.summary.get("max_factor_id")
    return int(stored) if isinstance(stored, (int, float)) else -1


def _compared(column: np.ndarray, candidate_ids: list[str], matched: str | None) -> tuple[str | None, float]:
    """The factor this one was compared with: its match, else the closest candidate (none when nothing overlaps)."""
    if matched is not None:
        return matched, float(column[candidate_ids.index(matched)])
    if len(column) == 0 or float(np.max(column)) <= 0.0:
        return None, 0.0
    best = int(np.argmax(column))
    return candidate_ids[best], float(column[best])


def _status(overlap_value: float, matched: bool, default: str | None) -> str:
    if default is not None:
        return default
    if not matched:
        return "new"
    return "kept" if overlap_value >= KEEP_THRESHOLD else "changed"


def _top_by_id(model: FactorModel) -> dict[str, list[str]]:
    return {row.factor_id: list(row.top_properties)[:_TOP_SHOWN] for row in model.factors.itertuples()}


def _drift_rows(
    stable: FactorModel,
    previous_top: dict[str, list[str]],
    comparison: dict[str, tuple[str | None, float]],
    gone: list[tuple[str, str | None, float]],
    status: str | None,
) -> pd.DataFrame:
    rows = []
    for factor_id, top in _top_by_id(stable).items():
        compared_with, value = comparison[factor_id]
        is_match = compared_with == factor_id
        rows.append(
            {
                "factor_id": factor_id,
                "status": _status(value, is_match, status),
                "overlap": value,
                "compared_with": compared_with or "",
                "previous_top_properties": previous_top.get(compared_with, []) if is_match else [],
                "top_properties": top,
            }
        )
    for factor_id, closest, value in gone:
        rows.append(
            {
                "factor_id": factor_id,
                "status": "gone",
                "overlap": value,
                "compared_with": closest or "",
                "previous_top_properties": previous_top.get(factor_id, []),
                "top_properties": [],
            }
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def _renamed(model: FactorModel, renamed: dict[str, str], max_number: int) -> FactorModel:
    """`model` with ids replaced in every table, per-factor arrays reordered to ascending new id, the max id kept.

    Document score columns follow the same order, so they stay the columns of `weights @ x` (see `core/transform`).
    """
    old_rows = sorted(renamed, key=factor_number)  # the current row order of the per-factor arrays
    order = np.argsort([factor_number(renamed[i]) for i in old_rows], kind="stable")
    stable = copy.copy(model)
    for name, value in vars(model).items():  # every per-factor array, whichever the model carries
        if _is_per_factor(name, value, len(old_rows)):
            setattr(stable, name, value[order])
    stable.factors = model.factors.assign(factor_id=model.factors["factor_id"].map(renamed))
    stable.assignments = model.assignments.assign(factor_id=model.assignments["factor_id"].map(renamed))
    scores = model.document_scores.rename(columns=renamed)
    others = [c for c in scores.columns if c not in set(renamed.values())]
    stable.document_scores = scores[[*others, *sorted(renamed.values(), key=factor_number)]]
    stable.summary = {**model.summary, "max_factor_id": int(max_number)}
    return stable


def _is_per_factor(name: str, value: object, n_factors: int) -> bool:
    return (
        name not in _PER_PROPERTY_FIELDS
        and isinstance(value, np.ndarray)
        and value.ndim >= 1
        and value.shape[0] == n_factors
    )
