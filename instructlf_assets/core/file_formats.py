"""Reading corpus files safely: whole bytes once (refusing torn reads), decoding and JSONL with line numbers.

Errors name the file and line, because that is what a user opens and fixes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .catalogue import DATA_DIR_ENV
from .errors import CorpusError


def read_stable_bytes(name: str, path: Path, read=Path.read_bytes) -> bytes:
    """The file's bytes, refusing a file that a writer changed while we read it (a torn, half-written corpus).

    Parsing happens on these bytes, so what is parsed is exactly what was hashed.
    """
    if not path.is_file():
        raise CorpusError(f"dataset '{name}': corpus file {path} not found (check ${DATA_DIR_ENV} and 'corpus.path')")
    before = stat_signature(path)
    content = read(path)
    if stat_signature(path) != before or len(content) != before[0]:
        raise CorpusError(
            f"dataset '{name}': corpus file {path} changed while it was being read; "
            "wait for the writer to finish (write to a temporary file and rename it into place), then re-run"
        )
    return content


def stat_signature(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def decode(name: str, path: Path, content: bytes, encoding: str) -> str:
    """Decoded text; a bad byte is reported with its line, because that is what a user can open and fix."""
    try:
        return content.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"dataset '{name}': {path} line {line}: byte 0x{content[exc.start]:02x} is not valid {encoding} "
            f"(byte offset {exc.start}); re-save the file as UTF-8 or set 'corpus.encoding' (e.g. latin-1)"
        ) from None
    except LookupError:
        raise CorpusError(f"dataset '{name}': field 'corpus.encoding' {encoding!r} is not a known encoding") from None


def parse_jsonl(name: str, path: Path, text: str, max_records: int | None = None) -> list[dict]:
    """One JSON object per line; blank lines are allowed, anything else names its line.

    `max_records` stops after that many objects (the rest of the file is not parsed).
    """
    records: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if max_records is not None and len(records) >= max_records:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"dataset '{name}': {path} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(
                f"dataset '{name}': {path} line {number}: expected a JSON object, got {type(record).__name__}"
            )
        records.append(record)
    return records
