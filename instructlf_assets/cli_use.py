"""`instructlf score` and `instructlf export`: use a dataset's fitted factors outside the pipeline.

`score` reads a file of new documents and writes each one's factor scores and top properties, with the stored
encoder, vocabulary and factor model (no refit, no LLM). `export` writes the factors, document scores, top
properties and metrics as Parquet and CSV, with a manifest of how they were made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# core.transform.DEFAULT_TOP_K; not imported here, so that parsing a command line does not import pandas.
DEFAULT_TOP_K = 5


def add_use_commands(commands: argparse._SubParsersAction) -> None:
    """Register `score` and `export` on the `instructlf` subcommand parsers."""
    score = commands.add_parser("score", help="score new documents with a dataset's fitted model (no refit, no LLM)")
    score.add_argument("dataset")
    score.add_argument("input", type=Path, help="CSV, JSONL or Parquet file of documents")
    score.add_argument("--out", type=Path, required=True, help="output file: .csv, .jsonl or .parquet")
    score.add_argument("--id-field", help="column of document ids (default: the dataset's corpus.id_field)")
    score.add_argument("--text-field", help="column of texts (default: the dataset's corpus.text_field, or text)")
    score.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="top properties per document")
    score.set_defaults(handler=_score)
    export = commands.add_parser("export", help="write factors, scores and metrics as Parquet + CSV with provenance")
    export.add_argument("dataset")
    export.add_argument("--to", type=Path, required=True, metavar="DIR")
    export.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="top properties per document")
    export.set_defaults(handler=_export)


def _score(args: argparse.Namespace) -> int:
    from .api import load_model
    from .core.catalogue import get_dataset
    from .core.errors import InstructLFError
    from .core.transform import check_writable_format, read_documents, write_table

    if args.top_k < 0:
        raise InstructLFError(f"--top-k must be 0 or more, got {args.top_k}")
    check_writable_format(args.out)  # before any work: a typo in --out must not cost a scoring pass
    spec = get_dataset(args.dataset)
    documents, _ = read_documents(args.input, spec, id_field=args.id_field, text_field=args.text_field)
    model = load_model(args.dataset)
    scored = model.transform(documents["text"].tolist(), doc_ids=documents["doc_id"].tolist(), top_k=args.top_k)
    write_table(scored, args.out)
    print(
        f"scored {len(scored)} documents on {len(model.factor_ids)} factors with dataset '{args.dataset}''s "
        f"model -> {args.out}"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    import dagster as dg

    from definitions import defs

    from .api import export_dataset
    from .core.catalogue import get_dataset
    from .orchestration import observe
    from .partitions import PARTITIONS_NAME

    get_dataset(args.dataset)
    with dg.DagsterInstance.get() as instance:
        if instance.has_dynamic_partition(PARTITIONS_NAME, args.dataset):
            # As `report` does: the manifest's "stale" entries are then true of the corpus and catalogue now.
            error = observe(instance, defs, args.dataset)
            if error:
                print(f"warning: observing '{args.dataset}' failed ({error}); staleness may be out of date")
        manifest = export_dataset(args.dataset, args.to, instance, top_k=args.top_k)
    for name, files in manifest["files"].items():  # type: ignore[union-attr]
        print(f"  {name:<24} {manifest['rows'][name]:>7} rows  {', '.join(files)}")  # type: ignore[index]
    print(f"exported dataset '{args.dataset}' to {args.to} (provenance in manifest.json)")
    return 0
