import pytest

from instructlf_assets.core.proposal_parsing import (
    MAX_PROPERTY_CHARS,
    dominant_script,
    estimate_tokens,
    parse_properties,
)

GOAL = "What aspects of a movie make a viewer recommend it to a friend?"


@pytest.mark.parametrize(
    "reply",
    [
        "1. Strong acting\n2. Slow pacing",
        "1) Strong acting\n2) Slow pacing",
        "(1) Strong acting\n(2) Slow pacing",
        "- Strong acting\n- Slow pacing",
        "* Strong acting\n* Slow pacing",
        "• Strong acting\n• Slow pacing",
        '["Strong acting", "Slow pacing"]',
        '```json\n["Strong acting", "Slow pacing"]\n```',
        'Here you go:\n```json\n{"properties": ["Strong acting", "Slow pacing"]}\n```\nHope it helps [1].',
        '[{"property": "Strong acting", "why": "x"}, {"name": "Slow pacing"}]',
        "Properties:\nStrong acting\nSlow pacing\n\nThat is my answer.",
    ],
)
def test_every_list_format_gives_the_same_properties(reply):
    assert parse_properties(reply, GOAL) == parse_properties("1. Strong acting\n2. Slow pacing", GOAL)
    assert parse_properties(reply, GOAL).properties == ["Strong acting", "Slow pacing"]


def test_analysis_sentence_and_closing_prose_are_not_properties():
    reply = (
        "The review praises the cast but finds the film long.\n\n1. Strong acting\n2. Long runtime\n\nOverall, mixed."
    )
    assert parse_properties(reply, GOAL).properties == ["Strong acting", "Long runtime"]


def test_decoration_is_removed():
    reply = '1. **Strong acting**\n2. "Slow pacing."\n3. `Witty dialogue`;\n4. “Great soundtrack”!'
    assert parse_properties(reply, GOAL).properties == [
        "Strong acting",
        "Slow pacing",
        "Witty dialogue",
        "Great soundtrack",
    ]


def test_short_head_before_a_colon_or_dash_is_the_property():
    reply = (
        "1. **Strong acting**: the lead carries every scene\n"
        "2. Slow pacing — the middle hour drags\n"
        "3. The director explains in an interview, much later, that the ending: was improvised on set"
    )
    assert parse_properties(reply, GOAL).properties == [
        "Strong acting",
        "Slow pacing",
        "The director explains in an interview, much later, that the ending: was improvised on set",
    ]


def test_duplicates_ignore_case_and_spacing():
    reply = "1. Strong acting\n2. strong   ACTING.\n3. Slow pacing"
    assert parse_properties(reply, GOAL).properties == ["Strong acting", "Slow pacing"]


def test_goal_echoes_headings_and_long_items_are_dropped():
    reply = f"1. {GOAL}\n2. Goal: {GOAL}\n3. Properties:\n4. {'very ' * 30}long\n5. Strong acting"
    assert parse_properties(reply, GOAL).properties == ["Strong acting"]


def test_long_items_are_dropped_not_truncated():
    long_item = "x" * (MAX_PROPERTY_CHARS + 1)
    parsed = parse_properties(f"1. {long_item}\n2. {'y' * MAX_PROPERTY_CHARS}", GOAL)
    assert parsed.properties == ["y" * MAX_PROPERTY_CHARS]


def test_nested_bullets_under_numbered_items_are_explanations():
    reply = "1. Strong acting\n   - the lead is superb\n2. Slow pacing\n   * drags midway"
    assert parse_properties(reply, GOAL).properties == ["Strong acting", "Slow pacing"]
    bullets = "- Strong acting\n  - the lead is superb\n- Slow pacing"
    assert parse_properties(bullets, GOAL).properties == ["Strong acting", "Slow pacing"]


def test_max_items_caps_in_reply_order():
    reply = "\n".join(f"{i}. property {i}" for i in range(1, 11))
    assert parse_properties(reply, GOAL, max_items=3).properties == ["property 1", "property 2", "property 3"]


def test_numbers_inside_prose_are_not_list_markers():
    assert parse_properties("It runs 2.5 hours.\n1.5 hours would be better.", GOAL).failure is not None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("   \n ", "empty reply"),
        ("I liked this review a lot, it is thoughtful.", "no numbered, bulleted or JSON list"),
        ("[1, 2, 3]", "no numbered, bulleted or JSON list"),
        (f"1. {GOAL}", "1 echoed the goal"),
        ("1. Acting\n2. acting", None),
        (f"1. {'z' * 200}", f"1 longer than {MAX_PROPERTY_CHARS} chars"),
    ],
)
def test_failure_says_what_the_reply_lacked(reply, reason):
    parsed = parse_properties(reply, GOAL)
    if reason is None:
        assert parsed.failure is None and parsed.properties == ["Acting"]
    else:
        assert parsed.properties == [] and reason in parsed.failure


def test_estimate_tokens_is_about_four_chars_per_token():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000) == 1000


def test_a_list_in_another_script_than_the_document_fails():
    document = "The acting was superb and the ending surprised everyone."
    parsed = parse_properties("分析。\n1. 演员的表演非常出色\n2. 结局令人意外", GOAL, document=document)
    assert parsed.failure == "the list is in CJK script but the document is in LATIN script"
    assert parse_properties("1. superb acting\n2. surprising ending", GOAL, document=document).failure is None
    assert parse_properties("1. 演技", GOAL, document=document).failure is None, "too few letters to judge"


def test_dominant_script_names_the_script_of_most_letters():
    assert dominant_script("Игра актёров великолепна, wow") == "CYRILLIC"
    assert dominant_script("café crème brûlée très bon") == "LATIN"
    assert dominant_script("すばらしい演技でした本当に") == "CJK"
    assert dominant_script("ok") is None
