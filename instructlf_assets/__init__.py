"""The Dagster layer of instructlf: one module per pipeline stage; the algorithms live in `core`."""
