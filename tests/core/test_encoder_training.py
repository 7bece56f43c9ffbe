"""Encoder training strategies, on the real MiniLM (marked slow: a few seconds each)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.embedding import base_model_path, encode
from instructlf_assets.core.encoder_training import TrainingOptions, fine_tune, save_model

# Properties named by codes that say nothing about their documents: the base model cannot match them, so
# only what training learns from the pairs can.
THEMES = {
    "label k1": ["the soundtrack", "the songs", "the score", "the music"],
    "label k2": ["the jokes", "the humour", "the gags", "the comedy"],
    "label k3": ["the camera work", "the cinematography", "the shots", "the framing"],
    "label k4": ["the lead actor", "the cast", "the performances", "the acting"],
}
TEMPLATES = ["I thought {} was great", "{} stood out to me", "everyone talked about {}", "{} made the film"]


def themed_pairs(templates: list[str]) -> pd.DataFrame:
    rows = [
        (template.format(phrase), label)
        for label, phrases in THEMES.items()
        for phrase in phrases
        for template in templates
    ]
    return pd.DataFrame(rows, columns=["anchor", "positive"])


def top1_accuracy(model, pairs: pd.DataFrame) -> float:
    labels = list(THEMES)
    scores = encode(model, pairs["anchor"].tolist()) @ encode(model, labels).T
    return float(np.mean(np.array(labels)[scores.argmax(axis=1)] == pairs["positive"].to_numpy()))


@pytest.fixture
def fresh_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(base_model_path()), device="cpu", local_files_only=True)


@pytest.mark.slow
def test_projection_head_learns_from_pairs_and_generalises(fresh_model, tmp_path) -> None:
    train, held_out = themed_pairs(TEMPLATES[:3]), themed_pairs(TEMPLATES[3:])
    before = top1_accuracy(fresh_model, held_out)
    options = TrainingOptions(strategy="projection_head", batch_size=8, head_epochs=30, head_learning_rate=3e-3)
    report = fine_tune(fresh_model, train, options)
    after = top1_accuracy(fresh_model, held_out)
    assert report.n_pairs == len(train) and report.n_steps == 30 * 6
    assert after >= 0.9 > before + 0.2
    # Saved as a plain sentence-transformers directory that loads and encodes the same.
    from sentence_transformers import SentenceTransformer

    save_model(fresh_model, tmp_path / "model")
    reloaded = SentenceTransformer(str(tmp_path / "model"), device="cpu", local_files_only=True)
    texts = held_out["anchor"].tolist()[:5]
    np.testing.assert_allclose(encode(reloaded, texts), encode(fresh_model, texts), atol=1e-6)


@pytest.mark.slow
def test_projection_head_with_no_epochs_is_the_base_model(fresh_model, base_model) -> None:
    pairs = themed_pairs(TEMPLATES)
    fine_tune(fresh_model, pairs, TrainingOptions(strategy="projection_head", head_epochs=0))
    texts = pairs["anchor"].tolist()[:6]
    np.testing.assert_allclose(encode(fresh_model, texts), encode(base_model, texts), atol=1e-6)


def test_unknown_strategy_is_refused(fresh_model) -> None:
    with pytest.raises(ValueError, match="strategy must be one of full, projection_head"):
        fine_tune(fresh_model, themed_pairs(TEMPLATES), TrainingOptions(strategy="lora"))
