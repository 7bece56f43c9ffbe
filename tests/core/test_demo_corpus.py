import pandas as pd

from instructlf_assets.core.demo_corpus import (
    ASPECTS,
    LEVELS,
    NOISE_SENTENCES,
    TEMPLATES,
    generate_demo_corpus,
    planted_aspect,
)


def test_is_deterministic_from_seed():
    pd.testing.assert_frame_equal(generate_demo_corpus(50, seed=3), generate_demo_corpus(50, seed=3))
    assert not generate_demo_corpus(50, seed=3)["text"].equals(generate_demo_corpus(50, seed=4)["text"])


def test_plants_at_least_five_aspects_with_three_levels():
    assert len(ASPECTS) >= 5
    assert all(set(TEMPLATES[a]) == set(LEVELS) and len(LEVELS) >= 3 for a in ASPECTS)


def test_every_template_names_exactly_its_aspect_and_noise_names_none():
    for aspect, levels in TEMPLATES.items():
        for templates in levels.values():
            assert all(planted_aspect(t.format(i="")) == aspect for t in templates)
    assert all(planted_aspect(n) is None for n in NOISE_SENTENCES)


def test_documents_contain_noise_and_several_aspects():
    corpus = generate_demo_corpus(200)
    mentioned = (corpus[[f"aspect_{a}" for a in ASPECTS]] != "absent").sum(axis=1)
    assert mentioned.min() >= 2
    assert all(any(n[1:] in text for n in NOISE_SENTENCES) for text in corpus["text"])


def test_target_depends_on_some_aspects_and_not_others():
    corpus = generate_demo_corpus(4000)
    y = corpus["recommended"].to_numpy()

    def effect(aspect: str) -> float:
        level = corpus[f"aspect_{aspect}"].to_numpy()
        return y[level == "positive"].mean() - y[level == "negative"].mean()

    assert effect("plot") > 0.2 and effect("acting") > 0.2
    assert abs(effect("soundtrack")) < 0.05 and abs(effect("pacing")) < 0.05
