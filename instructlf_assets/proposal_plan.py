"""What the proposal stage would send to an LLM, before it sends anything: documents, cache hits, tokens, cost."""

from __future__ import annotations

import dagster as dg

from .core.catalogue import DatasetSpec, data_dir
from .core.corpus import load_documents
from .proposals import PROPOSED_SPLITS


def proposal_plan_lines(defs: dg.Definitions, spec: DatasetSpec) -> list[str]:
    """The plan of `property_proposals` for the dataset's current corpus, in lines for the terminal.

    Reads the corpus (as `raw_documents` would) and the LLM cache; makes no call.
    """
    documents = load_documents(spec, data_dir()).documents
    documents = documents[documents["split"].isin(PROPOSED_SPLITS)]
    proposer = defs.resources["proposer"]
    plan = proposer.plan(documents, spec)
    if plan.calls_to_send == 0 and plan.backend != "openai":
        return [f"proposals: {plan.n_documents} documents, {plan.backend} back end: no LLM call"]
    cost = f", estimated cost {plan.estimated_cost:.4f}" if plan.estimated_cost is not None else ""
    lines = [
        f"proposals: {plan.n_documents} documents with {plan.backend} model {plan.model}: "
        f"{plan.n_cached} answered from the cache, {plan.n_to_send} to send ({plan.calls_to_send} calls)",
        f"  estimated tokens: {plan.estimated_prompt_tokens} prompt + {plan.estimated_completion_tokens} "
        f"completion{cost}",
    ]
    if plan.exceeds_cap:
        lines.append(f"  above INSTRUCTLF_LLM_MAX_CALLS ({proposer.max_calls}): `run` would stop before the first call")
    return lines
