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
