"""Chat messages that ask a model for a document's goal-related properties.

Default: one call per document, asking for a one-sentence analysis and then the numbered list in the same reply.
The analysis is kept because it makes the model read the document against the goal before listing, which is
what the paper's two-call protocol buys, at half the calls. `two_step=True` reproduces that protocol: the first
call asks only for the analysis; the follow-up (same chat, first reply as the assistant turn) asks for the list.

The catalogue's `PromptSpec.instruction` is always the head of the user message. Its `{goal}` placeholder is
substituted literally (not with `str.format`), so an instruction may contain other braces, e.g. a JSON example.

The document is quoted between `<document>` and `</document>`, and it cannot close that quote: any `<document>`
or `</document>` inside it (any case or spacing, or HTML-escaped as `&lt;`) has its `<` replaced by `‹`, so text
after it stays inside the quote. Only such documents change; every other prompt is byte-for-byte what it was, so
cached replies stay valid. What a model does with instructions inside the quote is checked on the way out
(`proposal_parsing.hostile_reason`).
"""

from __future__ import annotations

import re

from .catalogue import PromptSpec

Message = dict[str, str]

SYSTEM_PROMPT = (
    "You are a careful analyst. You read one document at a time and describe the fine-grained properties of it "
    "that matter for a stated goal. You are concrete and brief, and you follow the requested output format."
)
GOAL_PLACEHOLDER = "{goal}"
MAX_PROPERTY_WORDS = 10
LIST_CUE = "numbered list"  # every list request contains it; a local back end keys its priming on it
_DELIMITER = re.compile(r"(?:<|&lt;|&#0*60;|&#x0*3c;)(?=\s*/?\s*document\b)", re.IGNORECASE)


def quote_document(document: str) -> str:
    """The document between its delimiters, with any delimiter inside it defused (see the module docstring)."""
    return f"<document>\n{_DELIMITER.sub('‹', document.strip())}\n</document>"


def instruction_text(goal: str, spec: PromptSpec) -> str:
    """The catalogue instruction with the goal filled in; the goal is prepended if the template omits it."""
    if GOAL_PLACEHOLDER in spec.instruction:
        return spec.instruction.replace(GOAL_PLACEHOLDER, goal)
    return f"Goal: {goal}\n\n{spec.instruction}"


def list_request(spec: PromptSpec) -> str:
    k = spec.properties_per_document
    return (
        f"a {LIST_CUE} of up to {k} properties, one per line, formatted `1. property`. Each property is a "
        f"short phrase of at most {MAX_PROPERTY_WORDS} words, specific to this document and related to the goal"
    )


def first_messages(goal: str, document: str, spec: PromptSpec, *, two_step: bool = False) -> list[Message]:
    """System and user messages of the first (in one-step mode, the only) call for one document."""
    if two_step:
        task = (
            "Write one sentence analysing the document with respect to the goal. "
            "Do not list properties yet; you will be asked for them next."
        )
    else:
        task = (
            "First write one sentence analysing the document with respect to the goal. "
            f"Then write {list_request(spec)}. Write nothing after the list."
        )
    user = f"{instruction_text(goal, spec)}\n\n{quote_document(document)}\n\n{task}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def followup_messages(first: list[Message], first_reply: str, spec: PromptSpec) -> list[Message]:
    """Two-step mode: the first chat, the model's analysis as the assistant turn, then the request for the list."""
    request = f"Now write {list_request(spec)}. Write only the list."
    return [*first, {"role": "assistant", "content": first_reply}, {"role": "user", "content": request}]
