"""Pure algorithms of Instruct-LF. Nothing in this package imports Dagster.

Each module is one stage of the method with one obvious entry point, so it can be unit-tested and reused
outside the asset graph.
"""
