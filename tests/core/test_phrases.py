from instructlf_assets.core.phrases import candidate_phrases, normalize_phrase


def test_normalize_drops_articles_case_and_punctuation():
    assert normalize_phrase("  The Acting is SUPERB!! ") == "acting is superb"
    assert normalize_phrase("A “dark” humour.") == "dark humour"


def test_candidates_split_sentences_and_clauses_in_order():
    text = "The plot is gripping, and the cast is great. We ate popcorn; it rained"
    phrases = candidate_phrases(text)
    assert phrases[:3] == ["plot is gripping", "cast is great", "we ate popcorn"]
    assert "rained" not in phrases  # one word is below min_words


def test_long_clauses_become_bounded_windows_without_edge_stopwords():
    text = " ".join(f"word{i}" for i in range(25))
    windows = candidate_phrases(text, max_words=10)
    assert all(len(w.split()) <= 10 for w in windows)
    assert windows[0].startswith("word0") and windows[-1].endswith("word24")


def test_duplicate_clauses_are_listed_once():
    assert candidate_phrases("Great music. great music!") == ["great music"]
