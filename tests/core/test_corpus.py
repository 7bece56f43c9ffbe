import hashlib

import pandas as pd
import pytest

from instructlf_assets.core.catalogue import DatasetSpec, SplitRule
from instructlf_assets.core.corpus import assign_splits, corpus_fingerprint, load_documents, read_stable_bytes
from instructlf_assets.core.errors import CorpusError


def spec(**corpus) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "reviews",
            "goal": "What matters?",
            "corpus": {"path": "reviews.csv", "id_field": "id", **corpus},
        }
    )


def write_csv(tmp_path, rows):
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)


def test_csv_corpus_loads_with_splits_and_labels(tmp_path):
    write_csv(tmp_path, [{"id": f"d{i}", "text": f"text {i}", "stars": i % 5} for i in range(50)])
    loaded = load_documents(spec(label_fields=["stars"]), tmp_path)
    assert list(loaded.documents.columns) == ["doc_id", "text", "split", "stars"]
    assert set(loaded.documents["split"]) <= {"train", "valid", "test"}
    assert loaded.documents["doc_id"].tolist()[:2] == ["d0", "d1"]


def test_missing_file_names_dataset_path_and_variable(tmp_path):
    with pytest.raises(
        CorpusError, match=r"dataset 'reviews': corpus file .*reviews.csv not found.*INSTRUCTLF_DATA_DIR"
    ):
        load_documents(spec(), tmp_path)


def test_relative_path_without_data_dir_says_which_variable(tmp_path):
    with pytest.raises(CorpusError, match=r"INSTRUCTLF_DATA_DIR is not set"):
        load_documents(spec(), None)


def test_missing_text_column_is_named(tmp_path):
    write_csv(tmp_path, [{"id": "a", "body": "x"}])
    with pytest.raises(CorpusError, match=r"no column\(s\) \['text'\]"):
        load_documents(spec(), tmp_path)


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "reviews.csv").write_text("id,text\n")
    with pytest.raises(CorpusError, match=r"has no documents"):
        load_documents(spec(), tmp_path)


def test_duplicate_ids_name_the_rows(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    with pytest.raises(CorpusError, match=r"field 'doc_id' has duplicates \['a'\] in rows \[1, 3\]"):
        load_documents(spec(), tmp_path)


def test_row_without_text_is_named(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "   "}])
    with pytest.raises(CorpusError, match=r"field 'text' is empty in 1 row\(s\), first rows \[2\]"):
        load_documents(spec(), tmp_path)


def test_long_texts_are_truncated_and_counted(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x" * 500}, {"id": "b", "text": "short"}])
    loaded = load_documents(spec().model_copy(update={"max_text_chars": 100}), tmp_path)
    assert loaded.n_truncated == 1 and loaded.documents["text"].str.len().max() == 100


def test_split_of_existing_documents_survives_an_append():
    rule = SplitRule(valid_fraction=0.2, test_fraction=0.2)
    before = assign_splits(pd.Series([f"d{i}" for i in range(200)]), rule)
    after = assign_splits(pd.Series([f"d{i}" for i in range(300)]), rule)
    assert (after[:200] == before).all()
    assert 0.1 < (before == "test").mean() < 0.3


def test_fingerprint_follows_file_bytes(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}])
    first = corpus_fingerprint(spec(), tmp_path)
    write_csv(tmp_path, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    assert corpus_fingerprint(spec(), tmp_path) != first


def test_latin1_bytes_in_a_utf8_file_name_the_line(tmp_path):
    (tmp_path / "reviews.csv").write_bytes(b"id,text\na,fine\nb,caf\xe9 au lait\n")
    with pytest.raises(CorpusError, match=r"reviews.csv line 3: byte 0xe9 is not valid utf-8.*corpus.encoding"):
        load_documents(spec(), tmp_path)


def test_declared_encoding_reads_latin1(tmp_path):
    (tmp_path / "reviews.csv").write_bytes(b"id,text\na,fine\nb,caf\xe9 au lait\n")
    loaded = load_documents(spec(encoding="latin-1"), tmp_path)
    assert loaded.documents["text"].tolist() == ["fine", "café au lait"]


def test_broken_jsonl_line_is_named(tmp_path):
    lines = ['{"id": "a", "text": "one"}', "", '{"id": "b", "text": "tw', '{"id": "c", "text": "three"}']
    (tmp_path / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"reviews.jsonl line 3: not valid JSON"):
        load_documents(spec(path="reviews.jsonl"), tmp_path)


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    (tmp_path / "reviews.jsonl").write_text('{"id": "a", "text": "one"}\n["b", "two"]\n')
    with pytest.raises(CorpusError, match=r"line 2: expected a JSON object, got list"):
        load_documents(spec(path="reviews.jsonl"), tmp_path)


def test_jsonl_with_blank_lines_loads(tmp_path):
    (tmp_path / "reviews.jsonl").write_text('{"id": "a", "text": "one"}\n\n{"id": "b", "text": "two"}\n')
    assert load_documents(spec(path="reviews.jsonl"), tmp_path).documents["doc_id"].tolist() == ["a", "b"]


def test_csv_row_with_too_many_fields_is_named(tmp_path):
    (tmp_path / "reviews.csv").write_text("id,text\na,one\nb,two,extra\n")
    with pytest.raises(CorpusError, match=r"reviews.csv as csv: .*line 3"):
        load_documents(spec(), tmp_path)


def test_nul_bytes_are_removed_and_counted(tmp_path):
    (tmp_path / "reviews.csv").write_bytes(b"id,text\na,hel\x00lo\nb,plain\n")
    loaded = load_documents(spec(), tmp_path)
    assert loaded.documents["text"].tolist() == ["hello", "plain"] and loaded.n_nul_removed == 1


def test_text_of_only_nul_bytes_is_an_empty_text(tmp_path):
    (tmp_path / "reviews.csv").write_bytes(b"id,text\na,ok\nb,\x00\x00\n")
    with pytest.raises(CorpusError, match=r"field 'text' is empty in 1 row\(s\), first rows \[2\]"):
        load_documents(spec(), tmp_path)


def test_a_five_megabyte_document_is_truncated_to_the_cap(tmp_path):
    huge = "word " * (5 * 2**20 // 5)
    write_csv(tmp_path, [{"id": "a", "text": huge}, {"id": "b", "text": "short"}])
    loaded = load_documents(spec(), tmp_path)
    texts = loaded.documents["text"]
    assert loaded.n_truncated == 1 and 3990 < len(texts.iloc[0]) <= 4000 and texts.iloc[1] == "short"
    assert texts.iloc[0].endswith("word")  # cut between words, not inside one


def test_whitespace_only_text_in_jsonl_is_named(tmp_path):
    (tmp_path / "reviews.jsonl").write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": " \\t "}\n')
    with pytest.raises(CorpusError, match=r"field 'text' is empty in 1 row\(s\), first rows \[2\]"):
        load_documents(spec(path="reviews.jsonl"), tmp_path)


def test_file_that_changes_while_being_read_is_refused(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}])

    def read_while_a_writer_appends(path):
        content = path.read_bytes()
        with path.open("a") as handle:
            handle.write("b,y\n")
        return content

    with pytest.raises(CorpusError, match=r"changed while it was being read"):
        read_stable_bytes("reviews", tmp_path / "reviews.csv", read=read_while_a_writer_appends)


def test_symlink_leading_out_of_the_data_directory_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_csv(outside, [{"id": "a", "text": "x"}])
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews.csv").symlink_to(outside / "reviews.csv")
    with pytest.raises(CorpusError, match=r"field 'corpus.path' reviews.csv resolves to .* outside"):
        load_documents(spec(), data)


def test_loaded_bytes_are_hashed(tmp_path):
    write_csv(tmp_path, [{"id": "a", "text": "x"}])
    loaded = load_documents(spec(), tmp_path)
    assert loaded.sha256 == hashlib.sha256((tmp_path / "reviews.csv").read_bytes()).hexdigest()


# Input limits: an oversized corpus is refused before it is read whole or turned into a table.


def limited(dataset: DatasetSpec, max_documents: int = 200_000, max_corpus_mb: float = 1024.0) -> DatasetSpec:
    from types import SimpleNamespace

    limits = SimpleNamespace(max_documents=max_documents, max_corpus_mb=max_corpus_mb)
    return dataset.model_copy(update={"limits": limits})


def test_default_limits_fit_a_small_machine():
    from instructlf_assets.core.corpus import corpus_limits

    limits = corpus_limits(spec())
    assert (limits.max_documents, limits.max_corpus_mb) == (200_000, 1024.0)


def test_a_file_above_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import instructlf_assets.core.corpus as corpus

    write_csv(tmp_path, [{"id": f"d{i}", "text": "x" * 100} for i in range(30)])
    monkeypatch.setattr(corpus, "read_stable_bytes", lambda *a: pytest.fail("the file was read"))
    with pytest.raises(
        CorpusError, match=r"dataset 'reviews': corpus file .*reviews.csv is 0.0 MB, above limits.max_corpus_mb"
    ) as raised:
        load_documents(limited(spec(), max_corpus_mb=0.001), tmp_path)
    assert "raise 'limits.max_corpus_mb'" in str(raised.value)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_more_rows_than_the_limit_are_refused_before_a_table_is_built(tmp_path, monkeypatch, fmt):
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"text\n{i}" for i in range(12)]})
    path = tmp_path / f"reviews.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)  # quoted multi-line texts: 12 records on 25 lines
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("a table was built"))
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("a table was built"))
    monkeypatch.setattr(pd.DataFrame, "from_records", lambda *a, **k: pytest.fail("a table was built"))
    with pytest.raises(CorpusError, match=rf"reviews.{fmt} has 12 documents, above limits.max_documents \(11\)"):
        load_documents(limited(spec(path=f"reviews.{fmt}"), max_documents=11), tmp_path)


def test_quoted_multi_line_csv_records_are_counted_as_records(tmp_path):
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"text\n{i}" for i in range(12)]})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    assert len(load_documents(limited(spec(), max_documents=12), tmp_path).documents) == 12


def test_corpus_max_documents_within_the_limit_reads_only_the_first_rows(tmp_path):
    write_csv(tmp_path, [{"id": f"d{i}", "text": f"text {i}"} for i in range(50)])
    loaded = load_documents(limited(spec(max_documents=10), max_documents=20), tmp_path)
    assert loaded.documents["doc_id"].tolist() == [f"d{i}" for i in range(10)]
    lines = "\n".join(f'{{"id": "d{i}", "text": "t{i}"}}' for i in range(50)) + "\n{broken"
    (tmp_path / "reviews.jsonl").write_text(lines)
    loaded = load_documents(limited(spec(path="reviews.jsonl", max_documents=10), max_documents=20), tmp_path)
    assert len(loaded.documents) == 10, "lines after the first rows are not even parsed"


def test_a_generated_corpus_above_the_limit_is_refused_before_it_is_generated():
    dataset = DatasetSpec.model_validate(
        {"name": "demo", "goal": "What matters?", "corpus": {"generator": "demo", "n_documents": 400}}
    )
    with pytest.raises(CorpusError, match=r"has 400 documents, above limits.max_documents \(100\).*corpus.n_documents"):
        load_documents(limited(dataset, max_documents=100), None)
