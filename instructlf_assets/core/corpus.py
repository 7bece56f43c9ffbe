"""Reading a dataset's corpus into the `raw_documents` table, with errors that name file, row and field.

The table contract: `doc_id` (str, unique), `text` (str, non-empty), `split` (train/valid/test), then the
dataset's label columns.

Input is bounded by the dataset's `limits` (`max_documents`, `max_corpus_mb`; defaults a 2-core, 24 GB machine
survives). A file is measured with stat before it is read, and its rows are counted (CSV records, JSONL lines,
Parquet metadata) before any table is built, so an oversized corpus is refused with the setting to change
instead of exhausting memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import DATA_DIR_ENV, CorpusLimits, DatasetSpec, FileCorpus, GeneratedCorpus, PaperCorpus, SplitRule
from .demo_corpus import generate_demo_corpus
from .errors import CorpusError
from .file_formats import decode, parse_jsonl, read_stable_bytes
from .paper_datasets import paper_directory, paper_fingerprint, read_paper_corpus
from .truncation import cut_at_word

SPLITS = ("train", "valid", "test")
MB = 2**20


def corpus_limits(spec: DatasetSpec) -> CorpusLimits:
    """The dataset's `limits` (catalogue defaults where the entry gives none)."""
    return spec.limits


@dataclass(frozen=True)
class CorpusLoad:
    """The documents plus what loading had to repair, so the asset can count it and warn."""

    documents: pd.DataFrame
    source: str
    n_truncated: int
    n_nul_removed: int = 0
    sha256: str = ""


def resolve_corpus_path(spec: DatasetSpec, data_dir: Path | None) -> Path:
    """Where the corpus file is; relative paths are under $INSTRUCTLF_DATA_DIR."""
    assert isinstance(spec.corpus, FileCorpus)
    path = Path(spec.corpus.path)
    if data_dir is None:
        raise CorpusError(
            f"dataset '{spec.name}': corpus path '{path}' is relative but ${DATA_DIR_ENV} is not set; "
            f"set it to the directory that holds {path}"
        )
    resolved = (data_dir / path).resolve()
    if not resolved.is_relative_to(data_dir.resolve()):
        # The catalogue rejects '..' and absolute paths; this catches a symlink that leads out of the data dir.
        raise CorpusError(
            f"dataset '{spec.name}': field 'corpus.path' {path} resolves to {resolved}, outside ${DATA_DIR_ENV} "
            f"({data_dir})"
        )
    return data_dir / path


def corpus_fingerprint(spec: DatasetSpec, data_dir: Path | None) -> str:
    """Data version of the corpus: the file's bytes, or the generator's parameters for generated corpora."""
    if isinstance(spec.corpus, GeneratedCorpus):
        return hashlib.sha256(spec.corpus.model_dump_json().encode()).hexdigest()[:16]
    if isinstance(spec.corpus, PaperCorpus):
        if data_dir is None:
            return "unresolved"
        return paper_fingerprint(spec.corpus, paper_directory(spec.name, spec.corpus, data_dir))
    try:
        path = resolve_corpus_path(spec, data_dir)
    except CorpusError:
        return "unresolved"  # raw_documents reports the problem; observing must not fail for one dataset
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_documents(spec: DatasetSpec, data_dir: Path | None) -> CorpusLoad:
    """Load, validate and split a dataset's corpus."""
    digest = ""
    limits = corpus_limits(spec)
    if isinstance(spec.corpus, GeneratedCorpus):
        source = f"generated:{spec.corpus.generator}(n={spec.corpus.n_documents}, seed={spec.corpus.seed})"
        _check_document_count(spec.name, source, spec.corpus.n_documents, limits, "corpus.n_documents")
        frame = generate_demo_corpus(spec.corpus.n_documents, seed=spec.corpus.seed)
    elif isinstance(spec.corpus, PaperCorpus):
        source = str(paper_directory(spec.name, spec.corpus, data_dir))
        frame = read_paper_corpus(spec.name, spec.corpus, data_dir, _bounded_reader(spec.name, limits))
        _check_document_count(spec.name, source, len(frame), limits, "corpus.max_train_documents")
        digest = paper_fingerprint(spec.corpus, Path(source))
    else:
        path = resolve_corpus_path(spec, data_dir)
        frame, digest = read_file_corpus(spec.name, spec.corpus, path, limits)
        source = str(path)
    frame, n_nul_removed = _remove_nul(frame)
    frame = _fill_splits(frame, spec.split)
    frame = _validate(spec.name, source, frame)
    frame, n_truncated = _truncate(frame, spec.max_text_chars, keep=spec.text_keep)
    return CorpusLoad(frame.reset_index(drop=True), source, n_truncated, n_nul_removed, digest)


def read_file_corpus(
    name: str, corpus: FileCorpus, path: Path, limits: CorpusLimits, id_candidates: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, str]:
    """A corpus file's table and the sha256 of the bytes it was parsed from (read once, size and rows bounded).

    The one way every file corpus is read: a dataset's own, a batch to score, a file given to `instructlf score`.
    `id_candidates`: without a `corpus.id_field`, the first of these columns the file has holds the ids (a file
    of new documents with a `doc_id` column keeps its ids); else rows are numbered.
    """
    content = _bounded_reader(name, limits)(path)
    raw = _parse_file_corpus(name, corpus, path, content, limits)
    if corpus.id_field is None:
        found = next((column for column in id_candidates if column in raw.columns), None)
        corpus = corpus.model_copy(update={"id_field": found}) if found else corpus
    return _select_fields(name, corpus, path, raw), hashlib.sha256(content).hexdigest()


def clean_documents(name: str, source: str, frame: pd.DataFrame, max_text_chars: int, keep: str) -> pd.DataFrame:
    """NUL characters removed, rows validated, texts truncated: what scoring applies to a corpus it reads."""
    frame, _ = _remove_nul(frame)
    frame = _validate(name, source, frame)
    frame, _ = _truncate(frame, max_text_chars, keep=keep)
    return frame


def _parse_file_corpus(name: str, corpus: FileCorpus, path: Path, content: bytes, limits: CorpusLimits) -> pd.DataFrame:
    """The file's table, refused before it is built when it has more rows than `limits.max_documents`.

    A `corpus.max_documents` at or below the limit reads only that many rows, so a big file can be sampled.
    """
    fmt = corpus.format or path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "jsonl", "parquet"):
        raise CorpusError(f"dataset '{name}': cannot read {path}: unknown format '{fmt}' (csv, jsonl or parquet)")
    if not content.strip():
        raise CorpusError(f"dataset '{name}': corpus file {path} is empty; put one document per row in it")
    head = corpus.max_documents if corpus.max_documents and corpus.max_documents <= limits.max_documents else None
    try:
        if fmt == "parquet":
            if head is None:
                _check_document_count(name, path, _parquet_rows(content), limits, "corpus.max_documents")
            raw = pd.read_parquet(io.BytesIO(content))
        else:
            text = decode(name, path, content, corpus.encoding)
            if head is None:
                rows = _csv_records(text, limits.max_documents) if fmt == "csv" else _jsonl_records(text)
                _check_document_count(name, path, rows, limits, "corpus.max_documents")
            if fmt == "csv":
                raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, nrows=head)
            else:
                raw = pd.DataFrame.from_records(parse_jsonl(name, path, text, max_records=head))
    except (ValueError, OSError) as exc:
        raise CorpusError(f"dataset '{name}': cannot parse {path} as {fmt}: {exc}") from exc
    return raw


def _bounded_reader(name: str, limits: CorpusLimits):
    """`read_stable_bytes`, refusing a file whose size (by stat, before reading) is above `max_corpus_mb`."""

    def read(path: Path) -> bytes:
        if path.is_file():
            size = path.stat().st_size
            if size > limits.max_corpus_mb * MB:
                raise CorpusError(
                    f"dataset '{name}': corpus file {path} is {size / MB:,.1f} MB, above limits.max_corpus_mb "
                    f"({limits.max_corpus_mb:g} MB); raise 'limits.max_corpus_mb' in the dataset's catalogue "
                    "entry if this machine has the memory, or split the file"
                )
        return read_stable_bytes(name, path)

    return read


def _check_document_count(name: str, source: object, rows: int, limits: CorpusLimits, narrower: str) -> None:
    if rows > limits.max_documents:
        raise CorpusError(
            f"dataset '{name}': corpus {source} has {rows:,} documents, above limits.max_documents "
            f"({limits.max_documents:,}); raise 'limits.max_documents' in the dataset's catalogue entry, "
            f"or set '{narrower}' to use fewer"
        )


def _csv_records(text: str, limit: int) -> int:
    """Data records of a CSV text, counted without building a table: the line count when it is within `limit`
    (a record is at least one line), else an exact count by the csv module (a quoted field may span lines)."""
    at_most = max(text.count("\n"), text.count("\r"))  # lines after the header, at most
    if at_most <= limit:
        return at_most
    return max(sum(1 for row in csv.reader(io.StringIO(text)) if row) - 1, 0)


def _jsonl_records(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def _parquet_rows(content: bytes) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(content)).metadata.num_rows


def _select_fields(name: str, corpus: FileCorpus, path: Path, raw: pd.DataFrame) -> pd.DataFrame:
    missing = [f for f in (corpus.id_field, corpus.text_field, *corpus.label_fields, corpus.split_field) if f]
    missing = [f for f in missing if f not in raw.columns]
    if missing:
        raise CorpusError(f"dataset '{name}': {path} has no column(s) {missing}; it has {list(raw.columns)[:20]}")
    if corpus.max_documents:
        raw = raw.head(corpus.max_documents)
    ids = raw[corpus.id_field] if corpus.id_field else pd.Series(range(len(raw)))
    frame = pd.DataFrame({"doc_id": ids.astype(str).to_numpy(), "text": raw[corpus.text_field].to_numpy()})
    if corpus.split_field:
        frame["split"] = raw[corpus.split_field].astype(str).str.strip().str.lower().to_numpy()
    for label in corpus.label_fields:
        frame[label] = raw[label].to_numpy()
    return frame


def _validate(name: str, source: str, frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        raise CorpusError(f"dataset '{name}': corpus {source} has no documents")
    missing_text = frame["text"].isna() | frame["text"].map(lambda t: not isinstance(t, str) or not t.strip())
    if missing_text.any():
        rows = (np.flatnonzero(missing_text.to_numpy()) + 1).tolist()
        raise CorpusError(
            f"dataset '{name}': {source}: field 'text' is empty in {len(rows)} row(s), first rows {rows[:5]} "
            "(1-based data rows); remove them or fill them in"
        )
    duplicated = frame["doc_id"].duplicated(keep=False)
    if duplicated.any():
        dup_ids = frame.loc[duplicated, "doc_id"].unique().tolist()
        rows = (np.flatnonzero(duplicated.to_numpy()) + 1).tolist()
        raise CorpusError(
            f"dataset '{name}': {source}: field 'doc_id' has duplicates {dup_ids[:5]} in rows {rows[:10]}"
        )
    if "split" in frame.columns:
        bad = ~frame["split"].isin(SPLITS)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise CorpusError(
                f"dataset '{name}': {source}: row {row} field 'split' is {frame['split'].iloc[row - 1]!r}, "
                f"expected one of {SPLITS}"
            )
    return frame


def _fill_splits(frame: pd.DataFrame, rule: SplitRule) -> pd.DataFrame:
    """Hash splits where the corpus gives none; an explicit test set (a test file) replaces the hashed one.

    Where the reader gives a `split_group` (an ALFWorld game), the group is hashed, not the document, so one
    group's documents share a split. Otherwise a valid state's neighbours are its own game's other states in
    train, and validation measures a lookup that no evaluation state can make: on every ALFWorld state, kNN
    accuracy on states held out one by one was 0.48 for TF-IDF, on whole games held out 0.68, and on the
    valid_seen games 0.69 (benchmarks/RESULTS.md).
    """
    keys = frame["split_group"].fillna(frame["doc_id"]) if "split_group" in frame.columns else frame["doc_id"]
    if "split" not in frame.columns:
        frame.insert(2, "split", assign_splits(keys, rule))
        return frame
    unset = frame["split"].isna()
    if unset.any():
        explicit_test = (frame["split"] == "test").any()
        fill = rule.model_copy(update={"test_fraction": 0.0}) if explicit_test else rule
        frame = frame.copy()
        frame.loc[unset, "split"] = assign_splits(keys[unset], fill)
    return frame


def assign_splits(doc_ids: pd.Series, rule: SplitRule) -> np.ndarray:
    """Split by a hash of (seed, doc_id or group): deterministic, and unchanged for old documents when new ones
    arrive."""

    def unit(doc_id: str) -> float:
        digest = hashlib.blake2b(f"{rule.seed}:{doc_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    draws = np.array([unit(d) for d in doc_ids], dtype=float)
    return np.where(
        draws < rule.test_fraction,
        "test",
        np.where(draws < rule.test_fraction + rule.valid_fraction, "valid", "train"),
    )


def _remove_nul(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """NUL characters break tokenizers and Parquet readers downstream; they are removed and counted."""
    has_nul = frame["text"].map(lambda text: isinstance(text, str) and "\x00" in text)
    if has_nul.any():
        frame = frame.copy()
        frame.loc[has_nul, "text"] = frame.loc[has_nul, "text"].str.replace("\x00", "", regex=False)
    return frame, int(has_nul.sum())


def _truncate(frame: pd.DataFrame, max_chars: int, keep: str = "start") -> tuple[pd.DataFrame, int]:
    too_long = frame["text"].str.len() > max_chars
    if too_long.any():
        frame = frame.copy()
        frame.loc[too_long, "text"] = [cut_at_word(text, max_chars, keep) for text in frame.loc[too_long, "text"]]
    return frame, int(too_long.sum())
