import dataclasses

import numpy as np

from instructlf_assets.core.candidate_vocabulary import (
    CandidateOptions,
    build_candidate_vocabulary,
    last_lines,
    phrase_ngrams,
    propose_candidates,
)
from instructlf_assets.core.phrases import normalize_phrase

TOPICS = {
    "health": "medicare payment rates",
    "tax": "income tax credit",
    "defense": "military construction projects",
    "education": "student loan forgiveness",
}
FILLER = ["river", "window", "garden", "pencil", "orange", "basket", "ladder", "candle", "meadow", "violin"]
GOAL = "Which policy areas does this bill address: medicare, tax credits, student loans or military projects?"


def synthetic_corpus(n_per_topic: int = 20, seed: int = 0) -> tuple[list[str], list[str]]:
    """Each document states its topic's phrase plus noise; 'public law' recurs evenly across all topics."""
    rng = np.random.default_rng(seed)
    texts, topics = [], []
    for topic, phrase in TOPICS.items():
        for i in range(n_per_topic):
            noise = " ".join(rng.choice(FILLER, size=4, replace=False))
            tail = ", under public law" if i % 3 == 0 else ""
            texts.append(f"This bill amends {phrase} for {topic} programs. It mentions {noise}{tail}.")
            topics.append(topic)
    return texts, topics


def test_recurring_goal_related_phrases_are_found(fake_embed):
    texts, _ = synthetic_corpus()
    vocabulary = build_candidate_vocabulary(texts, GOAL, fake_embed, CandidateOptions(vocabulary_size=20))
    assert set(TOPICS.values()) <= set(vocabulary.phrases)


def test_each_document_proposes_its_own_recurring_property(fake_embed):
    texts, topics = synthetic_corpus()
    options = CandidateOptions(vocabulary_size=20, per_document=3)
    vocabulary = build_candidate_vocabulary(texts, GOAL, fake_embed, options)
    proposals = propose_candidates(texts, vocabulary, fake_embed, options)
    for topic, phrases in zip(topics, proposals, strict=True):
        assert TOPICS[topic] in {p.text for p in phrases}
        assert len(phrases) <= 3


def test_no_document_is_offered_a_phrase_it_does_not_state(fake_embed):
    texts, _ = synthetic_corpus()
    unseen = ["A bill about medicare payment rates and nothing else.", "Nothing relevant here at all."]
    options = CandidateOptions(vocabulary_size=50, min_df=2, per_document=30)
    vocabulary = build_candidate_vocabulary(texts, GOAL, fake_embed, options)
    everything = [*texts, *unseen]
    for text, phrases in zip(everything, propose_candidates(everything, vocabulary, fake_embed, options), strict=True):
        for phrase in phrases:
            assert f" {phrase.text} " in f" {normalize_phrase(text)} "
    assert propose_candidates(unseen[1:], vocabulary, fake_embed, options) == [[]]


def test_phrases_concentrated_in_one_topic_outrank_evenly_spread_ones(fake_embed):
    texts, _ = synthetic_corpus()
    options = CandidateOptions(vocabulary_size=100, min_df=2, max_df_share=0.5, diversity=0.0)
    vocabulary = build_candidate_vocabulary(texts, GOAL, fake_embed, options)
    concentration = dict(zip(vocabulary.phrases, vocabulary.concentration, strict=True))
    assert concentration["medicare payment rates"] > concentration["public law"] + 0.1


def test_phrases_stated_by_too_many_or_too_few_documents_are_not_candidates(fake_embed):
    texts, _ = synthetic_corpus()
    options = CandidateOptions(vocabulary_size=500, min_df=5, max_df_share=0.3, diversity=0.0)
    phrases = set(build_candidate_vocabulary(texts, GOAL, fake_embed, options).phrases)
    assert "bill amends" not in phrases  # every document states it
    rare = [*texts, "A unique zeppelin hangar appears once."]
    assert "zeppelin hangar" not in build_candidate_vocabulary(rare, GOAL, fake_embed, options).phrases


def test_a_sub_phrase_stated_only_inside_a_longer_one_gives_way_to_it(fake_embed):
    texts, _ = synthetic_corpus()
    options = CandidateOptions(vocabulary_size=500, min_df=2, max_df_share=1.0, diversity=0.0)
    phrases = set(build_candidate_vocabulary(texts, GOAL, fake_embed, options).phrases)
    assert "medicare payment rates" in phrases
    assert "medicare payment" not in phrases and "payment rates" not in phrases


def test_ngrams_stay_within_a_clause_and_have_content_words_at_both_ends():
    grams = phrase_ngrams("The Department of Health, under title 38 of the code; tax credits.")
    assert "department of health" in grams
    assert "health" in grams and "tax credits" in grams
    assert not any(g.startswith(("of ", "the ")) or g.endswith((" of", " the")) for g in grams)
    assert "health under" not in grams  # a comma ends the phrase
    assert not any(any(c.isdigit() for c in g) for g in grams)
    assert "title" in grams and "title code" not in grams  # the digit breaks the run


def test_phrases_never_start_or_end_with_a_function_verb():
    grams = phrase_ngrams("Amends the Internal Revenue Code, including health savings accounts.")
    assert "internal revenue code" in grams and "health savings accounts" in grams
    assert not any(g.split()[0] in {"amends", "including"} for g in grams)


def test_phrases_never_end_on_an_intensifier():
    grams = phrase_ngrams("The pacing is really tight and the acting is truly superb.")
    assert {"pacing", "acting", "superb"} <= grams
    assert not {"pacing is really", "acting is truly", "really tight", "truly superb"} & grams


def test_documents_can_propose_only_what_their_newest_lines_state(fake_embed):
    """An agent's state: the task line every state of a game shares, then its steps; the newest step decides."""
    steps = ["> open drawer\nThe drawer is open.", "> go to shelf\nOn the shelf, you see a candle."]
    texts = [f"Your task is to: put a mug in cabinet.\n> look around\nYou see a room.\n{steps[i % 2]}"
             for i in range(20)]  # fmt: skip
    whole = CandidateOptions(vocabulary_size=50, min_df=2, max_df_share=1.0, per_document=30)
    newest = dataclasses.replace(whole, propose_from_last_lines=2)
    vocabulary = build_candidate_vocabulary(texts, "What must the agent do next?", fake_embed, whole)
    assert {"mug in cabinet", "open drawer", "shelf"} <= set(vocabulary.phrases)  # from whole documents
    for text, by_whole, by_newest in zip(
        texts,
        propose_candidates(texts, vocabulary, fake_embed, whole),
        propose_candidates(texts, vocabulary, fake_embed, newest),
        strict=True,
    ):
        assert "mug in cabinet" in {p.text for p in by_whole}
        stated = {p.text for p in by_newest}
        assert "mug in cabinet" not in stated and "room" not in stated
        assert ("open drawer" in stated) == text.endswith("The drawer is open.")
        assert ("shelf" in stated) == text.endswith("you see a candle.")


def test_last_lines_skips_blank_lines_and_keeps_short_texts_whole():
    assert last_lines("a\n\nb\n c \n\n", 2) == "b\n c "
    assert last_lines("only line", 3) == "only line"
    assert last_lines("a\nb", None) == "a\nb"
