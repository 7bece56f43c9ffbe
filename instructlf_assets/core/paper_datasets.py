"""Readers for the paper's three datasets, in the layouts they are published in.

Each reader returns the `raw_documents` columns: `doc_id`, `text`, `split` (None: assign by hash later; "test":
fixed evaluation document), `eval_split` (the name the metrics use for its split) and the task's label columns.
Held-out files (the Inspired test split, ALFWorld valid_unseen) are optional: when present they are evaluated.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import DATA_DIR_ENV, PaperCorpus
from .errors import CorpusError
from .file_formats import decode, parse_jsonl
from .truncation import cut_at_word

_TASK = re.compile(r"Your task is to:\s*(.+)")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_SEEKER_TURN = re.compile(r"^\s*User:(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class PaperFiles:
    """The files a reader needs (required) and may use (optional, evaluated when present)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


FILES = {
    "inspired": PaperFiles(("inspired_train.csv",), ("inspired_test.csv",)),
    "bills": PaperFiles(("bills_subset.jsonl",)),
    "alfworld": PaperFiles(
        ("alfworld_train_expert_gt_traj.jsonl", "alfworld_valid_seen_expert_traj.jsonl"),
        ("alfworld_valid_unseen_expert_traj.jsonl",),
    ),
}


def paper_directory(name: str, corpus: PaperCorpus, data_dir: Path | None) -> Path:
    if data_dir is None:
        raise CorpusError(
            f"dataset '{name}': ${DATA_DIR_ENV} is not set; set it to the directory that holds "
            f"{corpus.directory or corpus.reader}/{FILES[corpus.reader].required[0]}"
        )
    return data_dir / (corpus.directory or corpus.reader)


def paper_fingerprint(corpus: PaperCorpus, directory: Path) -> str:
    """Reader options plus the bytes of every file it reads; an optional file appearing changes the version."""
    digest = hashlib.sha256(corpus.model_dump_json().encode())
    files = FILES[corpus.reader]
    for file_name in (*files.required, *files.optional):
        path = directory / file_name
        digest.update(file_name.encode())
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(b"<absent>")
    return digest.hexdigest()[:16]


def read_paper_corpus(name: str, corpus: PaperCorpus, data_dir: Path | None, read_bytes) -> pd.DataFrame:
    """The dataset's documents; `read_bytes(path)` is the caller's torn-read-safe reader."""
    directory = paper_directory(name, corpus, data_dir)
    for file_name in FILES[corpus.reader].required:
        if not (directory / file_name).is_file():
            raise CorpusError(
                f"dataset '{name}': expected {directory / file_name} "
                f"(${DATA_DIR_ENV}={data_dir}; see the dataset's catalogue entry)"
            )
    reader = {"inspired": _inspired, "bills": _bills, "alfworld": _alfworld}[corpus.reader]
    return reader(name, corpus, directory, read_bytes)


def movie_key(title: str) -> str:
    """Titles are compared without a trailing ' (year)', case and surrounding space."""
    return _YEAR.sub("", str(title)).strip().lower()


def normalise_action(action: str) -> str:
    """ALFWorld actions are compared with digits ignored ('go to drawer 3' == 'go to drawer 1')."""
    return " ".join(re.sub(r"\d+", "", action).split()).lower()


def _inspired(name: str, corpus: PaperCorpus, directory: Path, read_bytes) -> pd.DataFrame:
    train_path = directory / "inspired_train.csv"
    train = _csv(name, train_path, read_bytes, ["full_situation", "movies"])
    movies = [_movie_list(name, train_path, row, value) for row, value in enumerate(train["movies"], start=2)]
    ids = train[""] if "" in train.columns else pd.Series(range(len(train))).astype(str)
    texts = [_dialogue_text(text, corpus.turns) for text in train["full_situation"]]
    frame = pd.DataFrame({"doc_id": "train-" + ids.astype(str), "text": texts, "split": None, "eval_split": "test"})
    frame["movies"] = movies
    frame["split_group"] = _dialogues(train["full_situation"].astype(str).tolist())
    frame = _sample(frame, corpus)
    test_path = directory / "inspired_test.csv"
    if test_path.is_file():
        test = _csv(name, test_path, read_bytes, ["test_inputs", "test_outputs"])
        frame = pd.concat(
            [
                frame,
                pd.DataFrame(
                    {
                        "doc_id": [f"test-{i}" for i in range(len(test))],
                        "text": [_dialogue_text(text, corpus.turns) for text in test["test_inputs"]],
                        "split": "test",
                        "eval_split": "test",
                        "movies": [[title] for title in test["test_outputs"]],
                    }
                ),
            ],
            ignore_index=True,
        )
    return frame


def _dialogues(situations: list[str]) -> list[str]:
    """Which dialogue each row is a prefix of. The file has no dialogue id, but a dialogue's rows come in order,
    each extending the one before (or, where a turn was edited, opening with the same two lines), so a break in
    that chain starts the next dialogue: 696 dialogues in the 1,448 rows of inspired_train.csv. Splitting by
    dialogue keeps a held-out prefix's own continuation out of the training rows its neighbours come from.
    """

    def opening(text: str) -> list[str]:
        return text.strip().split("\n")[:2]

    groups, dialogue = [], -1
    for previous, text in zip([None, *situations], situations, strict=False):  # each row with the one before
        if previous is None or not (text.startswith(previous.rstrip()) or opening(text) == opening(previous)):
            dialogue += 1
        groups.append(f"dialogue-{dialogue}")
    return groups


def _dialogue_text(text: str, turns: str) -> str:
    """The dialogue as the catalogue asks for it. `seeker` keeps the user's turns, one per line, without their
    speaker tag; a prefix where the user has not spoken yet keeps its whole text, so no document is empty."""
    if turns == "all":
        return text
    seeker = [match.group(1).strip() for match in _SEEKER_TURN.finditer(str(text))]
    return "\n".join(turn for turn in seeker if turn) or text


def _movie_list(name: str, path: Path, row: int, value: str) -> list[str]:
    try:
        parsed = ast.literal_eval(value) if value.strip() else []
    except (ValueError, SyntaxError):
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(title, str) for title in parsed):
        raise CorpusError(
            f"dataset '{name}': {path} row {row} field 'movies': expected a list of titles, got {value!r}"
        )
    return parsed


def _bills(name: str, corpus: PaperCorpus, directory: Path, read_bytes) -> pd.DataFrame:
    path = directory / "bills_subset.jsonl"
    raw = _jsonl(name, path, read_bytes)
    _require(name, path, raw, ["id", "summary", "topic", "subtopic"])
    frame = pd.DataFrame(
        {
            "doc_id": raw["id"].astype(str),
            "text": raw["summary"],
            "split": None,
            "eval_split": "cv",
            "topic": raw["topic"].astype(str),
            "topic::subtopic": raw["topic"].astype(str) + "::" + raw["subtopic"].astype(str),
        }
    )
    return _sample(frame, corpus)


def _alfworld(name: str, corpus: PaperCorpus, directory: Path, read_bytes) -> pd.DataFrame:
    """One document per expert action: the task, then the newest part of the trajectory before the action."""
    train_path = directory / "alfworld_train_expert_gt_traj.jsonl"
    states = []
    for game, record in enumerate(_jsonl_records(name, train_path, read_bytes), start=1):
        turns = record.get("conversations") or []
        if not turns or turns[0].get("from") != "human":
            raise CorpusError(
                f"dataset '{name}': {train_path} line {game}: 'conversations' must start with a human turn"
            )
        task = _task(name, train_path, game, turns[0]["value"])
        history = [_room(turns[0]["value"])]
        for step in range(1, len(turns) - 1, 2):
            action, observation = turns[step]["value"], turns[step + 1]["value"]
            states.append((f"train-{game}-{step // 2}", task, list(history), action))
            history.append(f"> {action}\n{observation}")
    train = _states_frame(states, corpus, split=None, eval_split="")
    frames = [_sample(train, corpus)]
    for split in ("valid_seen", "valid_unseen"):
        path = directory / f"alfworld_{split}_expert_traj.jsonl"
        if path.is_file():
            frames.append(_states_frame(_valid_states(name, path, split, read_bytes), corpus, "test", split))
    return pd.concat(frames, ignore_index=True)


def _valid_states(name: str, path: Path, split: str, read_bytes) -> list[tuple[str, str, list[str], str]]:
    states = []
    for game, record in enumerate(_jsonl_records(name, path, read_bytes), start=1):
        if "steps" not in record or "init_obs" not in record:
            raise CorpusError(f"dataset '{name}': {path} line {game}: needs fields 'init_obs' and 'steps'")
        task = record.get("task") or _task(name, path, game, record["init_obs"])
        history = [_room(record["init_obs"])]
        for step, entry in enumerate(record["steps"]):
            states.append((f"{split}-{game}-{step}", task, list(history), entry["action"]))
            history.append(f"> {entry['action']}\n{entry['obs']}")
    return states


def _states_frame(states, corpus: PaperCorpus, split: str | None, eval_split: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": [doc_id for doc_id, *_ in states],
            "text": [_state_text(task, history, corpus.max_history_chars) for _, task, history, _ in states],
            "split": split,
            "eval_split": eval_split,
            "action": [action for *_, action in states],
            "split_group": [doc_id.rsplit("-", 1)[0] for doc_id, *_ in states],  # the game: split whole games
        }
    )


def _state_text(task: str, history: list[str], max_history_chars: int) -> str:
    """The encoder reads a few hundred word pieces (128 for `alfworld`): the task stays, and of the trajectory only
    its newest end."""
    trajectory = "\n".join(history)
    if len(trajectory) > max_history_chars:
        newest = trajectory[-max_history_chars:]
        # Whole steps; when the budget holds no line break (one long step: a room of many receptacles), whole words.
        if "\n" in newest:
            trajectory = newest[newest.find("\n") + 1 :]
        else:
            trajectory = cut_at_word(trajectory, max_history_chars, "end")
    return f"Your task is to: {task}\n{trajectory}"


def _task(name: str, path: Path, line: int, observation: str) -> str:
    found = _TASK.search(observation)
    if not found:
        raise CorpusError(f"dataset '{name}': {path} line {line}: no 'Your task is to:' in the first observation")
    return found.group(1).strip()


def _room(observation: str) -> str:
    """The room description without the welcome banner and the task line (the task is stated separately)."""
    lines = [line for line in observation.splitlines() if line.strip() and not line.startswith("-=")]
    return "\n".join(line for line in lines if not line.startswith("Your task is to:"))


def _sample(frame: pd.DataFrame, corpus: PaperCorpus) -> pd.DataFrame:
    """A seeded sample of the training documents, in their original order (evaluation rows are never sampled)."""
    if corpus.max_train_documents is None or len(frame) <= corpus.max_train_documents:
        return frame
    rng = np.random.default_rng(corpus.seed)
    keep = np.sort(rng.choice(len(frame), size=corpus.max_train_documents, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def _csv(name: str, path: Path, read_bytes, required: list[str]) -> pd.DataFrame:
    text = decode(name, path, read_bytes(path), "utf-8")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except ValueError as exc:
        raise CorpusError(f"dataset '{name}': cannot parse {path} as csv: {exc}") from None
    frame.columns = ["" if str(c).startswith("Unnamed: 0") else c for c in frame.columns]
    _require(name, path, frame, required)
    return frame


def _jsonl_records(name: str, path: Path, read_bytes) -> list[dict]:
    return parse_jsonl(name, path, decode(name, path, read_bytes(path), "utf-8"))


def _jsonl(name: str, path: Path, read_bytes) -> pd.DataFrame:
    return pd.DataFrame.from_records(_jsonl_records(name, path, read_bytes))


def _require(name: str, path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CorpusError(f"dataset '{name}': {path} has no column(s) {missing}; it has {list(frame.columns)[:20]}")
