"""`instructlf score` and `instructlf export`: the fitted model used from the command line and as files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.api import export_dataset, load_model
from instructlf_assets.cli import main
from resources.storage import read_artifact


@pytest.fixture(scope="module")
def tiny(tiny_in_process):
    assert tiny_in_process.result.success
    return tiny_in_process


def test_score_writes_one_row_per_document_with_factor_scores_and_top_properties(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTLF_STORAGE", str(tiny.storage))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    documents = read_artifact(tiny.storage / "raw_documents" / "tiny").head(12)
    documents[["doc_id", "text"]].to_json(tmp_path / "new.jsonl", orient="records", lines=True)
    code = main(
        ["score", "tiny", str(tmp_path / "new.jsonl"), "--out", str(tmp_path / "scored.parquet"), "--top-k", "3"]
    )
    assert code == 0
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    stored = tiny.factors.document_scores.set_index("doc_id").loc[documents["doc_id"]]
    assert list(scored["doc_id"]) == list(documents["doc_id"])
    np.testing.assert_allclose(scored[list(stored.columns)].to_numpy(), stored.to_numpy(), atol=1e-4)
    assert all(len(json.loads(cell)) == 3 for cell in scored["top_properties"])


def test_score_takes_field_overrides_and_names_a_missing_column(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSTRUCTLF_STORAGE", str(tiny.storage))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    pd.DataFrame({"key": ["a"], "body": ["A warm, funny film."]}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scored.csv"
    assert main(["score", "tiny", str(tmp_path / "new.csv"), "--out", str(out), "--text-field", "body"]) == 1
    assert "has no column(s) ['doc_id']" in capsys.readouterr().err
    args = ["--id-field", "key", "--text-field", "body"]
    assert main(["score", "tiny", str(tmp_path / "new.csv"), "--out", str(out), *args]) == 0
    assert pd.read_csv(out)["doc_id"].tolist() == ["a"]


def test_load_model_transforms_a_dataframe_column(tiny):
    frame = pd.DataFrame({"review": ["Great cast.", "Slow plot."]}, index=[10, 11])
    scored = load_model("tiny", storage=tiny.storage).transform(frame["review"])
    assert list(scored["doc_id"]) == [10, 11]


def test_export_writes_every_table_as_parquet_and_csv_with_the_reports_provenance(tiny, tmp_path):
    manifest = export_dataset("tiny", tmp_path, tiny.instance, storage=tiny.storage, top_k=2)
    names = {"factors", "document_factor_scores", "document_top_properties", "metrics"}
    assert set(manifest["files"]) == names
    for name in names:
        parquet, csv = pd.read_parquet(tmp_path / f"{name}.parquet"), pd.read_csv(tmp_path / f"{name}.csv")
        assert len(parquet) == len(csv) == manifest["rows"][name] > 0
    scores = pd.read_parquet(tmp_path / "document_factor_scores.parquet")
    pd.testing.assert_frame_equal(scores, tiny.factors.document_scores)
    top = pd.read_parquet(tmp_path / "document_top_properties.parquet")
    assert len(top) == 2 * len(scores) and top.groupby("doc_id")["score"].is_monotonic_decreasing.all()
    written = json.loads((tmp_path / "manifest.json").read_text())
    provenance = written["provenance"]
    assert provenance["goal"].startswith("What aspects of a movie")
    assert provenance["stages"]["latent_factors"]["run_id"] == tiny.result.run_id
    assert provenance["stages"]["latent_factors"]["code_version"]


def test_score_keeps_the_ids_of_a_doc_id_column_without_being_told(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTLF_STORAGE", str(tiny.storage))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    pd.DataFrame({"doc_id": ["r1", "r2"], "text": ["A warm, funny film.", "Dull plot."]}).to_csv(
        tmp_path / "new.csv", index=False
    )
    assert main(["score", "tiny", str(tmp_path / "new.csv"), "--out", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["doc_id"] for row in rows] == ["r1", "r2"]


def test_score_refuses_an_unknown_output_format_and_a_missing_input_before_any_work(tmp_path, monkeypatch, capsys):
    import instructlf_assets.api as api

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(api, "load_model", must_not_load)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    pd.DataFrame({"text": ["A film."]}).to_csv(tmp_path / "new.csv", index=False)
    assert main(["score", "tiny", str(tmp_path / "new.csv"), "--out", str(tmp_path / "o.txt")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "unknown format 'txt'" in line and "o.txt" in line
    assert main(["score", "tiny", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o.csv")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"input file {tmp_path / 'absent.csv'} not found" in line and "INSTRUCTLF_DATA_DIR" not in line


def test_loading_a_model_in_python_draws_no_progress_bar(tiny, capfd):
    from instructlf_assets.core.embedding import load_encoder

    load_encoder.cache_clear()
    load_model("tiny", storage=tiny.storage).transform(["A warm, funny film."])
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out and "it/s]" not in captured.err
