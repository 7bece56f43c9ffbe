"""The embedded demo corpus: movie reviews built from planted latent aspects, so recovery can be measured.

Each review discusses two to four of six aspects (acting, plot, visuals, soundtrack, pacing, humour), chosen
independently, each at one of three levels and in two sentences drawn from that level's phrasings, plus off-goal
noise sentences. So the properties of one aspect co-occur (the review talks about it, in two phrasings of one
level) and properties of different aspects do not: the structure a latent factor model is meant to find.

Every aspect sentence carries a word from that aspect's lexicon and noise sentences carry none, which is what lets
the evaluation label a discovered property with the aspect it came from. The target (`recommended`) depends on the
plot, acting and humour only, plus noise: a film is recommended when its story, cast and humour impress, and an
aspect a reviewer found nothing to say about counts against it (absent scores below a mixed review). A planted
ground truth for the downstream probe that depends on some aspects' presence and tone and not on the others.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

DEMO_GOAL = "What aspects of a movie make a viewer recommend it to a friend?"

LEVELS = ("positive", "mixed", "negative")
INTENSIFIERS = ("", "really ", "truly ", "genuinely ")
SENTENCES_PER_ASPECT = 2
ASPECTS_PER_REVIEW = (2, 4)
LEVEL_VALUE = {"positive": 1.0, "mixed": 0.25, "negative": -0.5, "absent": -0.75}
TARGET_WEIGHTS = {"plot": 1.0, "acting": 1.0, "humour": 0.7}
TARGET_NOISE = 0.5
TARGET_THRESHOLD = -0.75

ASPECT_LEXICON: dict[str, frozenset[str]] = {
    "acting": frozenset({"acting", "actor", "actress", "cast", "performance", "performances"}),
    "plot": frozenset({"plot", "story", "script", "ending", "storyline"}),
    "visuals": frozenset({"cinematography", "effects", "camera", "shot", "visuals"}),
    "soundtrack": frozenset({"soundtrack", "music", "score", "songs"}),
    "pacing": frozenset({"pacing", "pace", "runtime", "editing"}),
    "humour": frozenset({"humour", "jokes", "comedy", "gags"}),
}

# One clause per sentence (no commas or "and"/"but"), so every extracted phrase keeps its aspect word.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "acting": {
        "positive": (
            "the acting is {i}superb",
            "the lead actor gives a {i}moving performance",
            "the whole cast is {i}convincing",
        ),
        "mixed": (
            "the acting is uneven",
            "the cast delivers merely adequate performances",
            "the lead actress is fine in a thin role",
        ),
        "negative": (
            "the acting is {i}wooden",
            "the lead actor seems {i}bored in every scene",
            "the cast delivers {i}flat performances",
        ),
    },
    "plot": {
        "positive": (
            "the plot is {i}gripping",
            "the story keeps you guessing until the last minute",
            "the script is {i}clever",
        ),
        "mixed": (
            "the plot is predictable in places",
            "the story loses focus in the middle",
            "the ending feels somewhat rushed",
        ),
        "negative": ("the plot makes no sense", "the story is {i}dull", "the script is full of holes"),
    },
    "visuals": {
        "positive": (
            "the cinematography is {i}stunning",
            "the effects look {i}gorgeous",
            "every shot is beautifully framed",
        ),
        "mixed": (
            "the effects look dated in a few scenes",
            "the cinematography is competent",
            "the camera work is serviceable",
        ),
        "negative": (
            "the effects look {i}cheap",
            "the cinematography is {i}murky",
            "the camera shakes so much it hurts",
        ),
    },
    "soundtrack": {
        "positive": (
            "the soundtrack is {i}unforgettable",
            "the music lifts every scene",
            "the score is {i}haunting",
        ),
        "mixed": ("the soundtrack is pleasant enough", "the music is forgettable", "the songs feel generic"),
        "negative": (
            "the soundtrack is {i}grating",
            "the music drowns out the dialogue",
            "the score is {i}annoying",
        ),
    },
    "pacing": {
        "positive": ("the pacing is {i}tight", "the runtime flies by", "the editing keeps things brisk"),
        "mixed": ("the pacing sags in the second act", "the runtime is a bit long", "the editing is uneven"),
        "negative": ("the pacing is {i}sluggish", "the runtime drags on forever", "the editing is {i}choppy"),
    },
    "humour": {
        "positive": ("the jokes are {i}hilarious", "the humour is {i}sharp", "the comedy lands every time"),
        "mixed": ("the jokes are hit or miss", "the humour is mild", "only some of the gags land"),
        "negative": ("the jokes fall {i}flat", "the humour is {i}crude", "the comedy feels forced"),
    },
}

NOISE_SENTENCES = (
    "I watched it on a rainy Sunday afternoon",
    "my sister came along with me",
    "the theatre was half empty",
    "we bought popcorn before it started",
    "parking near the venue was easy",
    "I saw it with two friends from work",
    "the tickets were cheaper on Tuesday",
    "it was my first outing in weeks",
    "the seats in row twelve were comfortable",
    "we grabbed dinner nearby afterwards",
)

ASPECTS = tuple(TEMPLATES)
_WORD = re.compile(r"[a-z]+")


def generate_demo_corpus(n_documents: int = 400, seed: int = 0) -> pd.DataFrame:
    """Reviews with columns doc_id, text, one `aspect_<name>` level column per aspect, and `recommended`."""
    rng = np.random.default_rng(seed)
    rows = [_review(index, rng) for index in range(n_documents)]
    return pd.DataFrame(rows)


def _review(index: int, rng: np.random.Generator) -> dict[str, object]:
    n_aspects = int(rng.integers(ASPECTS_PER_REVIEW[0], ASPECTS_PER_REVIEW[1] + 1))
    mentioned = [ASPECTS[i] for i in rng.choice(len(ASPECTS), size=n_aspects, replace=False)]
    levels = {aspect: "absent" for aspect in ASPECTS}
    sentences = []
    for aspect in mentioned:
        level = LEVELS[int(rng.integers(len(LEVELS)))]
        levels[aspect] = level
        for choice in rng.choice(3, size=SENTENCES_PER_ASPECT, replace=False):
            template = TEMPLATES[aspect][level][int(choice)]
            sentences.append(template.format(i=INTENSIFIERS[int(rng.integers(len(INTENSIFIERS)))]))
    for noise in rng.choice(len(NOISE_SENTENCES), size=int(rng.integers(1, 3)), replace=False):
        sentences.append(NOISE_SENTENCES[noise])
    rng.shuffle(sentences)
    appeal = sum(w * LEVEL_VALUE[levels[a]] for a, w in TARGET_WEIGHTS.items()) + rng.normal(0.0, TARGET_NOISE)
    row: dict[str, object] = {
        "doc_id": f"review-{index:05d}",
        "text": " ".join(s[0].upper() + s[1:] + "." for s in sentences),
    }
    row.update({f"aspect_{aspect}": level for aspect, level in levels.items()})
    row["recommended"] = int(appeal > TARGET_THRESHOLD)
    return row


def planted_aspect(property_text: str) -> str | None:
    """The aspect a property talks about, by lexicon; None for noise or ambiguous phrases."""
    words = set(_WORD.findall(property_text.lower()))
    hits = [aspect for aspect, lexicon in ASPECT_LEXICON.items() if words & lexicon]
    return hits[0] if len(hits) == 1 else None
