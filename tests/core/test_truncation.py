from instructlf_assets.core.truncation import cut_at_word


def test_a_text_that_fits_is_unchanged():
    assert cut_at_word("short text", 50) == "short text"
    assert cut_at_word("short text", 50, "end") == "short text"


def test_the_kept_end_loses_its_partial_word():
    text = "You are in the middle of a room. Looking quickly around you, you see a cabinet 1."
    kept = cut_at_word(text, 40, "end")
    assert kept == "quickly around you, you see a cabinet 1."  # not "oking quickly ..."
    assert text.endswith(kept) and len(kept) <= 40
    assert cut_at_word(text, 20, "start") == "You are in the"  # not "You are in the middl"


def test_a_cut_on_whitespace_keeps_the_whole_word_next_to_it():
    assert cut_at_word("alpha beta gamma", 10, "end") == "beta gamma"
    assert cut_at_word("alpha beta gamma", 10, "start") == "alpha beta"


def test_a_text_without_whitespace_is_still_cut_to_the_cap():
    assert cut_at_word("x" * 500, 100) == "x" * 100
    assert cut_at_word("x" * 500, 100, "end") == "x" * 100


def test_any_whitespace_is_a_word_boundary():
    assert cut_at_word("un\xa0deux\xa0trois\xa0quatre", 12) == "un\xa0deux"
    assert cut_at_word("one\ttwo\nthree four", 12, "end") == "three four"


def test_a_cut_never_returns_an_empty_text_or_drops_a_long_partial_word():
    assert cut_at_word("abc" + " " * 60, 50, "end") == "abc"
    assert cut_at_word(" " * 60 + "abc", 50) == "abc"
    url = "https://example.org/" + "x" * 5000
    assert cut_at_word("see " + url, 4000) == ("see " + url)[:4000]  # not just "see"
    assert cut_at_word(url + " end", 4000, "end") == (url + " end")[-4000:]
