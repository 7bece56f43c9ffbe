"""The dataset catalogue: one YAML entry per dataset, validated at load time.

A dataset is data, not code: adding an entry adds a partition. Validation happens per entry so that one bad
file names itself and does not hide the good ones.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import CatalogueError

CATALOGUE_ENV = "INSTRUCTLF_CATALOGUE"
DATA_DIR_ENV = "INSTRUCTLF_DATA_DIR"
DEFAULT_CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "datasets"

DEFAULT_PROPOSAL_INSTRUCTION = (
    "Goal: {goal}\n\nRead the document below and list the fine-grained properties of it that matter for the goal. "
    "Each property is a short phrase of at most ten words."
)


# A goal is a question or a sentence; a longer text would crowd the document out of every prompt.
MAX_GOAL_CHARS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratedCorpus(_Strict):
    """A corpus the project generates itself (the embedded demo)."""

    generator: Literal["demo"]
    n_documents: int = Field(400, ge=10, le=100_000)
    seed: int = 0


class FileCorpus(_Strict):
    """A corpus read from a file under the data directory."""

    path: str = Field(description="Path relative to $INSTRUCTLF_DATA_DIR, inside it.")
    format: Literal["csv", "jsonl", "parquet"] | None = Field(None, description="Inferred from the suffix if unset.")
    encoding: str = Field("utf-8", description="Text encoding of csv/jsonl files.")
    id_field: str | None = Field(None, description="Column holding unique document ids; row numbers if unset.")
    text_field: str = "text"
    label_fields: tuple[str, ...] = ()
    split_field: str | None = Field(None, description="Column with train/valid/test; hashed split if unset.")
    max_documents: int | None = Field(None, ge=1)

    @field_validator("path")
    @classmethod
    def _inside_data_dir(cls, value: str) -> str:
        return _relative_inside(value)


class PaperCorpus(_Strict):
    """One of the paper's datasets, read from its published file layout under $INSTRUCTLF_DATA_DIR/<directory>.

    inspired: inspired_train.csv (+ inspired_test.csv, the test split, when present);
    bills: bills_subset.jsonl; alfworld: alfworld_train_expert_gt_traj.jsonl (training states) plus
    alfworld_valid_seen_expert_traj.jsonl (+ alfworld_valid_unseen_expert_traj.jsonl when present) for evaluation.
    """

    reader: Literal["inspired", "bills", "alfworld"]
    directory: str | None = Field(None, description="Sub-directory of $INSTRUCTLF_DATA_DIR; the reader name if unset.")
    max_train_documents: int | None = Field(
        None, ge=10, description="Sample this many training documents (seeded); all if unset."
    )
    max_history_chars: int = Field(
        600, ge=50, description="alfworld: characters of the newest trajectory kept after the task line."
    )
    turns: Literal["all", "seeker"] = Field(
        "all",
        description="inspired: the whole dialogue, or `seeker`: only the user's turns, what they want, without "
        "the recommender's questions (which are much alike across dialogues).",
    )
    seed: int = 0

    @field_validator("directory")
    @classmethod
    def _directory_inside(cls, value: str | None) -> str | None:
        return None if value is None else _relative_inside(value)

    @model_validator(mode="after")
    def _turns_are_dialogue_only(self) -> PaperCorpus:
        if self.turns != "all" and self.reader != "inspired":
            raise ValueError(f"turns: {self.turns!r} applies to the inspired reader's dialogues, not {self.reader!r}")
        return self


def _relative_inside(value: str) -> str:
    """The data directory is the one place a deployment grants read access to; entries may not leave it."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or PureWindowsPath(value).is_absolute() or ".." in path.parts:
        raise ValueError(f"{value!r} is outside the data directory: give a path relative to ${DATA_DIR_ENV}")
    if not path.parts:
        raise ValueError("path is empty")
    return value


class SplitRule(_Strict):
    """Fractions for the hash-based split: stable per document id, so appending documents moves nobody."""

    valid_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.2, ge=0.0, lt=0.5)
    seed: int = 0


TaskType = Literal["planted_factors", "recommendation", "classification", "next_action", "none"]


class TaskSpec(_Strict):
    """The downstream protocol: planted_factors (demo), recommendation (Inspired: kNN Hit@k), classification
    (Bills: cross-validated probes), next_action (ALFWorld: nearest training state's action)."""

    type: TaskType = "none"
    target: str | None = Field(None, description="Label column the downstream task predicts.")
    targets: tuple[str, ...] = Field((), description="classification: several label columns, each probed.")
    ks: tuple[int, ...] = Field((1, 5, 10, 20, 50), description="recommendation: Hit@k cut-offs.")
    neighbours: tuple[int, ...] = Field(
        (5, 10, 20, 50, 100, 200), description="recommendation: candidate N, tuned for Hit@20 on the valid split."
    )
    folds: int = Field(5, ge=2, description="classification: stratified folds of the transductive probes.")
    cross_validate: bool = Field(
        False,
        description="classification: also the paper's transductive k-fold probes over every document (cv_* "
        "metrics), beside the held-out test-split headline.",
    )
    min_class_size: int = Field(5, ge=1, description="classification: smaller classes are dropped and counted.")


class CorpusLimits(_Strict):
    """Input a 2-core, 24 GB machine survives; larger corpora are refused before they are read whole."""

    max_documents: int = Field(200_000, ge=1, description="Refuse a corpus with more rows than this.")
    max_corpus_mb: float = Field(1024.0, gt=0, description="Refuse a corpus file larger than this (megabytes).")


class CandidateSpec(_Strict):
    """The offline `candidates` strategy: phrases that recur across training documents (LLM back ends ignore it)."""

    min_df: int = Field(5, ge=1, description="Training documents that must state a phrase for it to be a candidate.")
    max_df_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Drop phrases more than this share of training documents state: they separate nothing.",
    )
    vocabulary_size: int = Field(
        1000, ge=2, le=20_000, description="Candidates kept, ranked by goal relevance and document concentration."
    )
    goal_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of relevance to the goal against how concentrated a phrase's documents are.",
    )
    per_document: int = Field(15, ge=1, le=100, description="Most candidates one document proposes.")
    propose_from_last_lines: int | None = Field(
        None,
        ge=1,
        description="Each document proposes only the candidates its last N non-blank lines state (the vocabulary "
        "still comes from whole documents): for documents whose newest step is what the goal asks about, like an "
        "agent's state. Unset: the whole document.",
    )


class PromptSpec(_Strict):
    instruction: str = DEFAULT_PROPOSAL_INSTRUCTION
    properties_per_document: int = Field(5, ge=1, le=30)
    two_step: bool = Field(False, description="The paper's protocol: an analysis call, then a call for the list.")
    offline_strategy: Literal["clauses", "candidates"] = Field(
        "candidates",
        description="Offline proposer: `candidates`, phrases recurring across training documents, each document "
        "proposing those it states; or `clauses`, each document's own clauses (top properties_per_document).",
    )
    candidates: CandidateSpec = CandidateSpec()


class EncoderSpec(_Strict):
    """How texts are embedded and how the compatibility model is built; the encoder asset's run config overrides
    `strategy` for one run.

    Every stage embeds with the base model (proposals, dedup, held-out recall, the embeddings baseline), so
    `max_seq_length` is read by all of them. `projection_head` keeps the transformer frozen and learns a linear
    head: document scores then come from the base embeddings the proposer already computed, which saves a whole
    encoder pass over the corpus (the one choice that lets ALFWorld's 60k states run in an hour on a CPU).
    """

    strategy: Literal["full", "projection_head"] = Field(
        "full", description="full: fine-tune the upper transformer layers; projection_head: a head on frozen ones."
    )
    max_seq_length: int | None = Field(
        None, ge=16, le=512, description="Word pieces of each text the encoder reads; the model's own if unset."
    )


_GENERATED, _PAPER, _FILE = "generated", "paper", "file"


def _corpus_kind(value: object) -> str:
    """`generator` means generated, `reader` one of the paper's datasets, anything else a file: so errors speak
    of one kind only."""
    if isinstance(value, dict):
        return _GENERATED if "generator" in value else _PAPER if "reader" in value else _FILE
    return _GENERATED if isinstance(value, GeneratedCorpus) else _PAPER if isinstance(value, PaperCorpus) else _FILE


class DatasetSpec(_Strict):
    """One catalogue entry. Everything that decides *what* is computed lives here, so it can be hashed."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    description: str = ""
    goal: str = Field(min_length=3, max_length=MAX_GOAL_CHARS)
    corpus: Annotated[
        Annotated[GeneratedCorpus, Tag(_GENERATED)]
        | Annotated[PaperCorpus, Tag(_PAPER)]
        | Annotated[FileCorpus, Tag(_FILE)],
        Discriminator(_corpus_kind),
    ]
    split: SplitRule = SplitRule()
    max_text_chars: int = Field(4000, ge=50)
    text_keep: Literal["start", "end"] = Field(
        "start", description="Which end of a long text survives truncation; 'end' for dialogues and trajectories."
    )
    limits: CorpusLimits = CorpusLimits()
    prompt: PromptSpec = PromptSpec()
    encoder: EncoderSpec = EncoderSpec()
    task: TaskSpec = TaskSpec()
    n_factors: int | None = Field(
        None,
        ge=2,
        description="Latent factors; if unset, parallel analysis picks them from the training scores.",
    )

    @field_validator("goal")
    @classmethod
    def _goal_is_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("goal must be a non-empty sentence")
        return value.strip()


def catalogue_dir() -> Path:
    return Path(os.environ.get(CATALOGUE_ENV) or DEFAULT_CATALOGUE_DIR)


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def load_entry(path: Path) -> DatasetSpec:
    """Parse one entry; the error names the file and the offending field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"catalogue entry {path}: cannot read YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise CatalogueError(f"catalogue entry {path}: expected a mapping of fields, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise CatalogueError(f"catalogue entry {path}: field 'name' is {raw['name']!r} but the file is {path.name}")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"field '{_field_path(err['loc'])}': {err['msg']}" for err in exc.errors())
        raise CatalogueError(f"catalogue entry {path}: {problems}") from None


def _field_path(loc: tuple[object, ...]) -> str:
    """The field as the user wrote it in YAML: without pydantic's union tags."""
    return ".".join(str(part) for part in loc if part not in (_GENERATED, _PAPER, _FILE))


def load_catalogue(directory: Path | None = None) -> tuple[dict[str, DatasetSpec], dict[str, str]]:
    """All valid entries, plus an error message per invalid file (so the good ones still load)."""
    directory = directory or catalogue_dir()
    if not directory.is_dir():
        raise CatalogueError(f"catalogue directory {directory} does not exist (set ${CATALOGUE_ENV})")
    entries: dict[str, DatasetSpec] = {}
    errors: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            entries[path.stem] = load_entry(path)
        except CatalogueError as exc:
            errors[path.stem] = str(exc)
    return entries, errors


def get_dataset(name: str, directory: Path | None = None) -> DatasetSpec:
    entries, errors = load_catalogue(directory)
    if name in errors:
        raise CatalogueError(errors[name])
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise CatalogueError(
            f"unknown dataset {name!r}: no entry {name}.yaml in {directory or catalogue_dir()} (known: {known})"
        )
    return entries[name]
