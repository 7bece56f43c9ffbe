import numpy as np

from instructlf_assets.core.evaluation import (
    Metric,
    binary_probe,
    majority_baseline,
    metrics_table,
    planted_ami,
)


def label_of(text: str) -> str | None:
    return text.split()[0] if not text.startswith("noise") else None


def test_planted_ami_is_one_for_perfect_recovery_and_ignores_unlabelled():
    texts = ["a x", "a y", "b x", "b y", "noise q"]
    ami, n = planted_ami(texts, np.array([0, 0, 1, 1, 0]), label_of)
    assert ami == 1.0 and n == 4


def test_planted_ami_is_near_zero_for_random_assignment():
    rng = np.random.default_rng(0)
    texts = [f"{c} w" for c in rng.choice(list("abcdef"), 600)]
    ami, _ = planted_ami(texts, rng.integers(0, 6, 600), label_of)
    assert abs(ami) < 0.05


def test_probe_separates_informative_from_useless_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    informative = y[:, None] + rng.normal(0, 0.5, (400, 3))
    useless = rng.normal(size=(400, 3))
    good = {
        m.metric: m.value for m in binary_probe("f", informative[:300], y[:300], informative[300:], y[300:], "test")
    }
    bad = {m.metric: m.value for m in binary_probe("e", useless[:300], y[:300], useless[300:], y[300:], "test")}
    assert good["accuracy"] > 0.85 and bad["accuracy"] < 0.65 and good["auc"] > bad["auc"]


def test_majority_baseline_and_keys():
    metric = majority_baseline(np.array([1, 1, 0]), np.array([1, 0, 0, 0]), "test")
    assert metric.value == 0.25 and metric.key == "majority/accuracy/test"
    assert Metric("factors", "ami", None, 1.0, 3).key == "factors/ami"
    assert list(metrics_table([metric]).columns) == [
        "method",
        "metric",
        "split",
        "value",
        "n",
        "stderr",
        "seed",
    ]
