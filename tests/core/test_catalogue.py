from pathlib import Path

import pytest

from instructlf_assets.core.catalogue import DEFAULT_CATALOGUE_DIR, get_dataset, load_catalogue, load_entry
from instructlf_assets.core.errors import CatalogueError

GOOD = """
goal: Which topics does a bill cover?
corpus: {path: bills/x.jsonl, text_field: summary}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_shipped_catalogue_has_the_demo_entry():
    demo = get_dataset("demo", DEFAULT_CATALOGUE_DIR)
    assert demo.task.type == "planted_factors" and demo.corpus.generator == "demo"


def test_name_defaults_to_file_stem(tmp_path):
    assert load_entry(write(tmp_path, "bills", GOOD)).name == "bills"


def test_unknown_key_names_entry_and_field(tmp_path):
    path = write(tmp_path, "bills", GOOD + "colour: red\n")
    with pytest.raises(CatalogueError, match=r"bills.yaml: field 'colour': Extra inputs"):
        load_entry(path)


def test_missing_goal_names_field(tmp_path):
    path = write(tmp_path, "bills", "corpus: {path: x.csv}\n")
    with pytest.raises(CatalogueError, match=r"field 'goal': Field required"):
        load_entry(path)


def test_unknown_task_type_names_field(tmp_path):
    path = write(tmp_path, "bills", GOOD + "task: {type: astrology}\n")
    with pytest.raises(CatalogueError, match=r"field 'task.type'"):
        load_entry(path)


def test_one_bad_entry_does_not_hide_the_good_ones(tmp_path):
    write(tmp_path, "bills", GOOD)
    write(tmp_path, "broken", "goal: [unclosed\n")
    entries, errors = load_catalogue(tmp_path)
    assert list(entries) == ["bills"]
    assert "broken.yaml" in errors["broken"]


def test_unknown_dataset_lists_known_ones(tmp_path):
    write(tmp_path, "bills", GOOD)
    with pytest.raises(CatalogueError, match=r"unknown dataset 'bils'.*known: bills"):
        get_dataset("bils", tmp_path)


@pytest.mark.parametrize("path", ["../secrets/x.csv", "/etc/passwd", "bills/../../x.csv", "C:\\\\data\\\\x.csv"])
def test_corpus_path_outside_the_data_directory_names_entry_and_field(tmp_path, path):
    entry = write(tmp_path, "bills", f"goal: Which topics?\ncorpus: {{path: '{path}'}}\n")
    with pytest.raises(CatalogueError, match=r"bills.yaml: field 'corpus.path': Value error, '.*' is outside the data"):
        load_entry(entry)
