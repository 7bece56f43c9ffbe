"""The paper's readers on small files written in the published formats (the real files are not in the repo)."""

import json

import pandas as pd
import pytest

from instructlf_assets.core.catalogue import DatasetSpec
from instructlf_assets.core.corpus import corpus_fingerprint, load_documents
from instructlf_assets.core.errors import CorpusError
from instructlf_assets.core.paper_datasets import movie_key, normalise_action


def spec(reader: str, **extra) -> DatasetSpec:
    corpus = {"reader": reader, **extra.pop("corpus", {})}
    return DatasetSpec.model_validate({"name": reader, "goal": "What matters here?", "corpus": corpus, **extra})


def write_inspired(data, n=40, test=False):
    (data / "inspired").mkdir(parents=True, exist_ok=True)
    rows = [{"": i, "full_situation": f"User: I like film {i}\nSystem: ", "movies": repr([f"Movie {i % 7} (2019)"])}
            for i in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(data / "inspired" / "inspired_train.csv", index=False)
    if test:
        tests = [{"": i, "test_inputs": f"User: test {i}", "test_outputs": f"Movie {i % 3}"} for i in range(6)]
        pd.DataFrame(tests).to_csv(data / "inspired" / "inspired_test.csv", index=False)


def test_inspired_holds_out_part_of_train_without_a_test_file(tmp_path):
    write_inspired(tmp_path)
    documents = load_documents(spec("inspired", split={"test_fraction": 0.3}), tmp_path).documents
    assert set(documents["split"]) == {"train", "valid", "test"}
    assert documents["movies"].iloc[0] == ["Movie 0 (2019)"] and documents["doc_id"].iloc[0] == "train-0"


def test_inspired_test_file_is_the_test_split_and_changes_the_data_version(tmp_path):
    write_inspired(tmp_path)
    before = corpus_fingerprint(spec("inspired"), tmp_path)
    write_inspired(tmp_path, test=True)
    documents = load_documents(spec("inspired", split={"test_fraction": 0.3}), tmp_path).documents
    test = documents[documents["split"] == "test"]
    assert list(test["doc_id"]) == [f"test-{i}" for i in range(6)] and test["movies"].iloc[1] == ["Movie 1"]
    assert set(documents.loc[documents["doc_id"].str.startswith("train"), "split"]) <= {"train", "valid"}
    assert corpus_fingerprint(spec("inspired"), tmp_path) != before


def test_inspired_bad_movie_list_names_row_and_field(tmp_path):
    write_inspired(tmp_path)
    path = tmp_path / "inspired" / "inspired_train.csv"
    frame = pd.read_csv(path)
    frame.loc[3, "movies"] = "Movie X"
    frame.to_csv(path, index=False)
    with pytest.raises(CorpusError, match=r"inspired_train.csv row 5 field 'movies': expected a list"):
        load_documents(spec("inspired"), tmp_path)


def test_missing_file_names_the_variable_and_expected_path(tmp_path):
    with pytest.raises(CorpusError, match=r"expected .*bills/bills_subset.jsonl \(\$INSTRUCTLF_DATA_DIR="):
        load_documents(spec("bills"), tmp_path)
    with pytest.raises(CorpusError, match=r"INSTRUCTLF_DATA_DIR is not set"):
        load_documents(spec("bills"), None)


def test_bills_combines_topic_and_subtopic(tmp_path):
    (tmp_path / "bills").mkdir()
    lines = [{"id": f"b{i}", "summary": f"A bill about {i}", "topic": "Health", "subtopic": f"S{i % 2}"}
             for i in range(10)]  # fmt: skip
    (tmp_path / "bills" / "bills_subset.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    documents = load_documents(spec("bills"), tmp_path).documents
    assert documents["topic::subtopic"].iloc[1] == "Health::S1" and documents["eval_split"].iloc[0] == "cv"


def alfworld_game(task: str, actions: list[str]) -> dict:
    turns = [{"from": "human", "value": f"-= Welcome =-\n\nYou see a drawer 1.\n\nYour task is to: {task}"}]
    for i, action in enumerate(actions):
        turns += [{"from": "gpt", "value": action}, {"from": "human", "value": f"Observation {i} " + "x" * 80}]
    return {"split": "train", "game": "g", "task_type": "t", "conversations": turns}


def valid_game(task: str, actions: list[str]) -> dict:
    steps = [{"action": a, "admissible_commands": [], "obs": f"Seen {i}"} for i, a in enumerate(actions)]
    return {"split": "valid_seen", "task": task, "init_obs": f"You see a desk 1.\n\nYour task is to: {task}",
            "steps": steps}  # fmt: skip


def write_alfworld(data, unseen=False):
    folder = data / "alfworld"
    folder.mkdir(parents=True, exist_ok=True)
    games = [alfworld_game(f"put a mug {g} in cabinet.", [f"go to shelf {s}" for s in range(6)]) for g in range(5)]
    (folder / "alfworld_train_expert_gt_traj.jsonl").write_text("\n".join(json.dumps(g) for g in games))
    (folder / "alfworld_valid_seen_expert_traj.jsonl").write_text(json.dumps(valid_game("heat egg.", ["go to a 1"])))
    if unseen:
        text = json.dumps(valid_game("cool egg.", ["open b 2", "take c 3"]))
        (folder / "alfworld_valid_unseen_expert_traj.jsonl").write_text(text)


def test_inspired_splits_whole_dialogues_found_from_their_prefix_chains(tmp_path):
    """The file's rows are prefixes of dialogues with no dialogue id: each row that extends the one before it is
    the same dialogue, and a dialogue's prefixes must share a split."""
    (tmp_path / "inspired").mkdir()
    rows, turns = [], ["System: Hi!", "User: I like horror.", "System: Seen Us?", "User: Yes, more gore."]
    for d in range(12):
        opening = [f"System: Hello {d}!", f"User: Dialogue {d} here."]
        for k in range(1, 4):
            rows.append(
                {"": len(rows), "full_situation": "\n".join(opening + turns[:k]) + "\nSystem: ", "movies": "[]"}
            )
    pd.DataFrame(rows).to_csv(tmp_path / "inspired" / "inspired_train.csv", index=False)
    rule = {"valid_fraction": 0.3, "test_fraction": 0.3}
    documents = load_documents(spec("inspired", split=rule), tmp_path).documents
    assert documents["split_group"].nunique() == 12
    assert (documents.groupby("split_group")["split"].nunique() == 1).all()
    assert {"train", "valid", "test"} == set(documents["split"])


def test_alfworld_one_document_per_action_keeps_the_task_and_the_newest_history(tmp_path):
    write_alfworld(tmp_path)
    documents = load_documents(spec("alfworld", corpus={"max_history_chars": 200}), tmp_path).documents
    train = documents[documents["eval_split"] == ""]
    assert len(train) == 30 and set(train["split"]) <= {"train", "valid"}
    last = train[train["doc_id"] == "train-1-5"].iloc[0]
    assert last["text"].startswith("Your task is to: put a mug 0 in cabinet.\n") and last["action"] == "go to shelf 5"
    assert "Observation 4" in last["text"] and "Observation 0" not in last["text"], "the newest states are kept"
    first = train[train["doc_id"] == "train-1-0"].iloc[0]
    assert "You see a drawer 1." in first["text"] and "Welcome" not in first["text"]
    valid = documents[documents["eval_split"] == "valid_seen"]
    assert list(valid["split"]) == ["test"] and valid["action"].iloc[0] == "go to a 1"


def test_alfworld_a_step_longer_than_the_history_budget_is_cut_between_words(tmp_path):
    """A first state is one long room description: the budget keeps its newest whole words, no fragment."""
    folder = tmp_path / "alfworld"
    folder.mkdir()
    room = "You are in the middle of a room. Looking quickly around you, you see " + ", ".join(
        f"a cabinet {i}" for i in range(40)
    )
    game = alfworld_game("put a mug in cabinet.", ["go to cabinet 1"])
    game["conversations"][0]["value"] = f"-= Welcome =-\n\n{room}.\n\nYour task is to: put a mug in cabinet."
    (folder / "alfworld_train_expert_gt_traj.jsonl").write_text(json.dumps(game))
    (folder / "alfworld_valid_seen_expert_traj.jsonl").write_text(json.dumps(valid_game("heat egg.", ["go to a 1"])))
    documents = load_documents(spec("alfworld", corpus={"max_history_chars": 100}), tmp_path).documents
    history = documents.set_index("doc_id").loc["train-1-0", "text"].split("\n", 1)[1]
    stated = f"{room}."
    assert len(history) <= 100 and stated.endswith(history)
    assert stated[-len(history) - 1] == " ", f"starts inside a word: {history[:12]!r}"


def test_alfworld_validation_holds_out_whole_games(tmp_path):
    """A valid state whose own game's other states sit in train makes validation a lookup of that game."""
    write_alfworld(tmp_path)
    documents = load_documents(spec("alfworld", split={"valid_fraction": 0.45}), tmp_path).documents
    train = documents[documents["eval_split"] == ""]
    per_game = train.groupby("split_group")["split"].agg(set)
    assert len(per_game) == 5 and all(len(splits) == 1 for splits in per_game)
    assert {"train", "valid"} == set(train["split"]), "both splits occur, so the grouping is what keeps games whole"
    assert (train["split_group"] == train["doc_id"].str.rsplit("-", n=1).str[0]).all()


def test_alfworld_samples_training_states_and_reads_valid_unseen_when_present(tmp_path):
    write_alfworld(tmp_path, unseen=True)
    documents = load_documents(spec("alfworld", corpus={"max_train_documents": 12, "seed": 3}), tmp_path).documents
    assert (documents["eval_split"] == "").sum() == 12
    assert (documents["eval_split"] == "valid_unseen").sum() == 2


def test_comparisons_ignore_years_and_digits():
    assert movie_key("Knives Out (2019)") == movie_key("knives out") == "knives out"
    assert normalise_action("go to drawer 3") == normalise_action("go to drawer 12") == "go to drawer"


def test_inspired_seeker_turns_keep_what_the_user_said_in_train_and_test(tmp_path):
    (tmp_path / "inspired").mkdir()
    dialogue = (
        "\nSystem: What do you like?\nUser: Scary films, please.\nSystem: Seen Us?\nUser: Yes! More gore.\nSystem: "
    )
    train = [
        {"": 0, "full_situation": dialogue, "movies": "['Us']"},
        {"": 1, "full_situation": "System: Hi!", "movies": "[]"},
    ]
    pd.DataFrame(train).to_csv(tmp_path / "inspired" / "inspired_train.csv", index=False)
    pd.DataFrame([{"": 0, "test_inputs": dialogue, "test_outputs": "Us"}]).to_csv(
        tmp_path / "inspired" / "inspired_test.csv", index=False
    )
    seeker = load_documents(spec("inspired", corpus={"turns": "seeker"}), tmp_path).documents.set_index("doc_id")
    assert seeker.loc["train-0", "text"] == seeker.loc["test-0", "text"] == "Scary films, please.\nYes! More gore."
    assert seeker.loc["train-1", "text"] == "System: Hi!"  # the user has not spoken yet: nothing is dropped
    whole = load_documents(spec("inspired"), tmp_path).documents.set_index("doc_id")
    assert "What do you like?" in whole.loc["train-0", "text"]
    assert corpus_fingerprint(spec("inspired", corpus={"turns": "seeker"}), tmp_path) != corpus_fingerprint(
        spec("inspired"), tmp_path
    )


def test_seeker_turns_are_refused_for_readers_without_dialogues():
    with pytest.raises(ValueError, match="turns: 'seeker' applies to the inspired reader"):
        spec("bills", corpus={"turns": "seeker"})
