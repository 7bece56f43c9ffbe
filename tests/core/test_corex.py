"""Linear CorEx on data whose factor structure and total correlation are known in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from instructlf_assets.core.corex import CorexInputError, LinearCorex, total_correlation_bound
from instructlf_assets.core.errors import FactorModelError


@dataclass(frozen=True)
class Planted:
    """x_i = loading_i * z_{group(i)} + sqrt(1 - loading_i^2) * noise_i, so every x_i has unit variance."""

    groups: np.ndarray
    loadings: np.ndarray

    @property
    def n_factors(self) -> int:
        return int(self.groups.max()) + 1

    def correlation(self) -> np.ndarray:
        loading_matrix = np.zeros((self.groups.size, self.n_factors))
        loading_matrix[np.arange(self.groups.size), self.groups] = self.loadings
        return loading_matrix @ loading_matrix.T + np.diag(1.0 - self.loadings**2)

    def true_tc(self) -> float:
        """TC of a Gaussian = -1/2 log det(corr), in nats."""
        return gaussian_tc(self.correlation())

    def sample(self, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        hidden = rng.standard_normal((n_samples, self.n_factors))
        noise = rng.standard_normal((n_samples, self.groups.size)) * np.sqrt(1.0 - self.loadings**2)
        return hidden[:, self.groups] * self.loadings + noise, hidden


def gaussian_tc(correlation: np.ndarray) -> float:
    sign, logdet = np.linalg.slogdet(correlation)
    assert sign > 0
    return -0.5 * float(logdet)


def make_planted(n_factors: int, per_factor: int, low: float, high: float, seed: int) -> Planted:
    rng = np.random.default_rng(seed)
    n_variables = n_factors * per_factor
    loadings = rng.uniform(low, high, size=n_variables) * rng.choice([-1.0, 1.0], size=n_variables)
    return Planted(groups=np.repeat(np.arange(n_factors), per_factor), loadings=loadings)


PLANTED = make_planted(n_factors=5, per_factor=8, low=0.5, high=0.9, seed=7)


@pytest.fixture(scope="module")
def planted_data() -> tuple[np.ndarray, np.ndarray]:
    return PLANTED.sample(1000, seed=1)


@pytest.fixture(scope="module")
def fitted(planted_data: tuple[np.ndarray, np.ndarray]) -> LinearCorex:
    return LinearCorex(n_factors=5, device="cpu", random_state=0).fit(planted_data[0])


# ---- recovery of planted structure ---------------------------------------------------------------------


def test_recovers_planted_clusters(fitted: LinearCorex) -> None:
    assert adjusted_mutual_info_score(PLANTED.groups, fitted.assignments_) >= 0.95
    assert fitted.converged_


def test_factor_tcs_attribute_the_bound(fitted: LinearCorex) -> None:
    # On a modular solution each variable's information sits in one factor, so the attribution adds up.
    assert fitted.tcs_.shape == (5,)
    assert np.all(fitted.tcs_ > 0)
    assert fitted.tcs_.sum() == pytest.approx(fitted.tc_, rel=0.02)


def test_tc_is_a_tight_lower_bound_on_the_analytic_tc() -> None:
    planted = make_planted(n_factors=3, per_factor=6, low=0.6, high=0.9, seed=3)
    X, _ = planted.sample(5000, seed=4)
    model = LinearCorex(n_factors=3, device="cpu").fit(X)
    sample_tc = gaussian_tc(np.corrcoef(X.T))
    assert model.tc_ > 0
    # Strictly a lower bound on the TC of the Gaussian with the sample correlation ...
    assert model.tc_ <= sample_tc + 1e-3
    # ... and, up to sampling error (~n^2 / 4N nats here), on the population TC, which it nearly attains.
    assert model.tc_ <= planted.true_tc() + 0.05
    assert model.tc_ >= 0.8 * planted.true_tc()


def test_transform_recovers_hidden_factors_on_new_data(fitted: LinearCorex) -> None:
    X_new, hidden = PLANTED.sample(2000, seed=99)
    scores = fitted.transform(X_new)
    assert scores.dtype == np.float32
    assert scores.shape == (2000, 5)
    for k in range(PLANTED.n_factors):
        factor = np.bincount(fitted.assignments_[PLANTED.groups == k], minlength=5).argmax()
        r = np.corrcoef(scores[:, factor], hidden[:, k])[0, 1]
        assert abs(r) > 0.9, f"factor {factor} vs hidden {k}: r={r:.3f}"


def test_fit_transform_matches_fit_then_transform(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0]
    once = LinearCorex(n_factors=5, device="cpu").fit_transform(X)
    twice = LinearCorex(n_factors=5, device="cpu").fit(X).transform(X)
    np.testing.assert_allclose(once, twice, rtol=1e-5, atol=1e-5)
    # Scores are the noiseless part of unit-noise factors: variance SNR / (1 + SNR), just under 1.
    assert np.all((once.var(axis=0) > 0.8) & (once.var(axis=0) < 1.0))


# ---- the objective -------------------------------------------------------------------------------------


def test_bound_function_reproduces_tc_from_data_and_correlation(
    fitted: LinearCorex, planted_data: tuple[np.ndarray, np.ndarray]
) -> None:
    X = planted_data[0]
    assert total_correlation_bound(X, fitted.weights_) == pytest.approx(fitted.tc_, rel=1e-3)
    assert total_correlation_bound(np.corrcoef(X.T), fitted.weights_) == pytest.approx(fitted.tc_, rel=1e-3)


def _tc_of_covariance(cov: np.ndarray) -> float:
    return 0.5 * (float(np.log(np.diag(cov)).sum()) - float(np.linalg.slogdet(cov)[1]))


def test_bound_equals_tc_minus_both_gaps_for_any_w() -> None:
    # Independent check of the closed form: for y = W x + e, L(W) = TC(X) - TC(X|Y) - TC(Y), each term a
    # Gaussian log-det identity computed here from the joint covariance directly.
    rng = np.random.default_rng(11)
    root = rng.standard_normal((8, 8))
    cov = root @ root.T + 0.5 * np.eye(8)
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    W = rng.standard_normal((3, 8)) * 0.7
    cov_y = W @ corr @ W.T + np.eye(3)
    cross = W @ corr
    cov_x_given_y = corr - cross.T @ np.linalg.solve(cov_y, cross)
    expected = _tc_of_covariance(corr) - _tc_of_covariance(cov_x_given_y) - _tc_of_covariance(cov_y)
    assert total_correlation_bound(corr, W) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert total_correlation_bound(corr, W) <= gaussian_tc(corr)


def test_annealed_objective_is_the_bound_on_the_noised_correlation() -> None:
    # What a stage with noise eps optimises must be L(W) for (1 - eps^2) Sigma + eps^2 I, on either path.
    from instructlf_assets.core.corex import _bound_terms, _data_stats, _standardize_inplace

    X, _ = PLANTED.sample(500, seed=3)
    W = np.random.default_rng(2).standard_normal((5, 40)) * 0.3
    data = torch.tensor(X)
    _standardize_inplace(data, chunk_rows=64)
    eps = 0.36
    noised = (1 - eps**2) * np.corrcoef(X.T) + eps**2 * np.eye(40)
    expected = total_correlation_bound(noised, W)
    for dense in (True, False):
        stats = _data_stats(data, dense=dense, chunk_rows=64)
        got = float(_bound_terms(torch.tensor(W), stats, eps=eps).bound)
        assert got == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(total_correlation_bound(X, W), rel=1e-3)


def test_bound_accepts_unit_variance_factor_convention(
    fitted: LinearCorex, planted_data: tuple[np.ndarray, np.ndarray]
) -> None:
    # Same model written with unit-variance factors: y_j / sd(y_j) = (w_j / sd(y_j)) x + noise.
    unit_variance_w = fitted.weights_ / fitted.factor_std_[:, None]
    X = planted_data[0]
    score = total_correlation_bound(X, unit_variance_w, convention="unit_variance")
    assert score == pytest.approx(fitted.tc_, rel=1e-3)
    assert total_correlation_bound(X, unit_variance_w) < 0.8 * fitted.tc_  # read as unit-noise: weaker
    with pytest.raises(ValueError, match="must be < 1"):
        total_correlation_bound(X, fitted.weights_, convention="unit_variance")


def test_fitted_weights_beat_random_and_null_weights(
    fitted: LinearCorex, planted_data: tuple[np.ndarray, np.ndarray]
) -> None:
    X = planted_data[0]
    rng = np.random.default_rng(0)
    random_w = rng.standard_normal(fitted.weights_.shape) * np.abs(fitted.weights_).mean()
    assert total_correlation_bound(X, random_w) < 0.5 * fitted.tc_
    assert total_correlation_bound(X, np.zeros_like(fitted.weights_)) == pytest.approx(0.0, abs=1e-9)
    # Any W gives a lower bound, random or not.
    assert total_correlation_bound(X, random_w) <= gaussian_tc(np.corrcoef(X.T))


def test_history_covers_every_stage_and_ends_at_the_kept_bound(fitted: LinearCorex) -> None:
    assert len(fitted.stage_n_iter_) == 5
    assert sum(fitted.stage_n_iter_) == fitted.n_iter_ == len(fitted.history_)
    last = fitted.history_[-fitted.stage_n_iter_[-1] :]
    # The kept W is the last stage's best. Its modular objective is a lower bound on the exact one, and
    # equals it on a modular solution.
    assert max(last) <= fitted.tc_ + 1e-4
    assert max(last) == pytest.approx(fitted.tc_, rel=0.01)
    assert fitted.history_[0] < 0.1 * fitted.tc_  # started from (nearly) W = 0


def test_exact_objective_is_at_least_the_modular_one(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0]
    exact = LinearCorex(n_factors=5, device="cpu", modular=False).fit(X)
    modular = LinearCorex(n_factors=5, device="cpu").fit(X)
    assert exact.tc_ >= modular.tc_ - 0.02
    assert modular.tc_ >= 0.98 * exact.tc_


def test_chunked_path_matches_dense_path(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0]
    dense = LinearCorex(n_factors=5, device="cpu").fit(X)
    chunked = LinearCorex(n_factors=5, device="cpu", max_dense_vars=10, chunk_rows=128).fit(X)
    assert chunked.tc_ == pytest.approx(dense.tc_, rel=1e-3)
    assert adjusted_mutual_info_score(dense.assignments_, chunked.assignments_) == pytest.approx(1.0)
    assert total_correlation_bound(X, chunked.weights_) == pytest.approx(chunked.tc_, rel=1e-3)


# ---- determinism ---------------------------------------------------------------------------------------


def test_same_random_state_gives_identical_fit(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0][:300, :16]
    threads = torch.get_num_threads()
    first = LinearCorex(n_factors=2, device="cpu", random_state=5).fit(X)
    second = LinearCorex(n_factors=2, device="cpu", random_state=5).fit(X)
    other = LinearCorex(n_factors=2, device="cpu", random_state=6).fit(X)
    np.testing.assert_array_equal(first.weights_, second.weights_)
    assert torch.get_num_threads() == threads  # the small-problem single-thread loop is scoped to fit
    assert first.tc_ == second.tc_
    assert not np.array_equal(first.weights_, other.weights_)


def test_restarts_keep_the_best_bound(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0][:300, :16]
    singles = [LinearCorex(n_factors=2, device="cpu", random_state=s).fit(X).tc_ for s in (0, 1, 2)]
    best = LinearCorex(n_factors=2, device="cpu", random_state=0, n_restarts=3).fit(X)
    assert best.tc_ == pytest.approx(max(singles), rel=1e-6)


# ---- validation and edge cases -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "n_factors", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 3.0]]), 1, r"NaN or infinite values in column\(s\) 0"),
        (np.array([[0.0, 1.0], [1.0, np.inf], [1.0, 3.0]]), 1, r"NaN or infinite values in column\(s\) 1"),
        (np.zeros((10, 3)) + np.arange(3), 4, "n_factors=4 exceeds the number of variables \\(3\\)"),
        (np.random.default_rng(0).standard_normal((3, 6)), 3, "corpus is too small.*3 samples.*n_factors=3"),
        (np.random.default_rng(0).standard_normal((1, 6)), 1, "at least 2 row"),
        (np.arange(6.0), 1, "must be 2-D"),
        (np.random.default_rng(0).standard_normal((10, 3)), 0, "n_factors must be a positive integer"),
    ],
)
def test_invalid_input_raises_value_error_with_fix(X: np.ndarray, n_factors: int, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        LinearCorex(n_factors=n_factors, device="cpu").fit(X)
    assert isinstance(caught.value, FactorModelError)  # the CLI's one-line error family


def test_invalid_schedule_raises() -> None:
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(CorexInputError, match=r"ending in 0\.0"):
        LinearCorex(n_factors=1, anneal_schedule=(0.5, 0.1), device="cpu").fit(X)


def test_transform_before_fit_and_with_wrong_width_raise(fitted: LinearCorex) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LinearCorex(n_factors=2).transform(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 40\)"):
        fitted.transform(np.zeros((3, 39)))


def test_constant_column_carries_no_information(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    X = planted_data[0]
    with_constant = np.column_stack([X, np.full(X.shape[0], 3.5)])
    model = LinearCorex(n_factors=5, device="cpu").fit(with_constant)
    baseline = LinearCorex(n_factors=5, device="cpu").fit(X)
    assert model.scale_[-1] == 1.0
    assert model.mean_[-1] == pytest.approx(3.5)
    assert np.all(model.mis_[:, -1] == 0.0)
    assert model.assignments_.shape == (41,)
    assert 0 <= model.assignments_[-1] < 5
    assert adjusted_mutual_info_score(PLANTED.groups, model.assignments_[:-1]) >= 0.95
    assert model.tc_ == pytest.approx(baseline.tc_, rel=0.01)
    scores = model.transform(with_constant)
    assert np.isfinite(scores).all()


# ---- optimisation internals ----------------------------------------------------------------------------


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.36])
@pytest.mark.parametrize("modular", [False, True])
def test_closed_form_gradient_matches_autograd(dense: bool, eps: float, modular: bool) -> None:
    from instructlf_assets.core.corex import _bound_terms, _data_stats, _standardize_inplace, _value_and_gradient

    X, _ = PLANTED.sample(300, seed=5)
    X[:, 3] = 2.0  # a constant column: zero variance, must get zero gradient and no NaN
    data = torch.tensor(X)
    _standardize_inplace(data, chunk_rows=64)
    stats = _data_stats(data, dense=dense, chunk_rows=64)
    for scale in (0.05, 0.6):  # near W = 0 and with strong factors (where the modular min switches branch)
        generator = torch.Generator().manual_seed(1)
        W = (torch.randn((5, 40), generator=generator, dtype=torch.float64) * scale).requires_grad_()
        bound = _bound_terms(W, stats, eps=eps, modular=modular).bound
        (expected,) = torch.autograd.grad(bound, W)
        value, gradient = _value_and_gradient(W.detach(), stats, eps=eps, modular=modular)
        assert value == pytest.approx(float(bound.detach()), rel=1e-12)
        torch.testing.assert_close(gradient, expected, rtol=1e-9, atol=1e-12)
        if eps == 0.0:  # with eps > 0 the noised copy of a constant column is pure noise, not nothing
            assert torch.all(gradient[:, 3] == 0.0)


def test_polish_steps_never_rotate_the_factors() -> None:
    from instructlf_assets.core.corex import _without_rotation

    generator = torch.Generator().manual_seed(0)
    W = torch.randn((4, 30), generator=generator, dtype=torch.float64)
    direction = torch.randn((4, 30), generator=generator, dtype=torch.float64)
    projected = _without_rotation(direction, W)
    for _ in range(5):
        root = torch.randn((4, 4), generator=generator, dtype=torch.float64)
        rotation_tangent = (root - root.T) @ W  # d/dt of exp(tK) W at t = 0, K antisymmetric
        assert float((projected * rotation_tangent).sum()) == pytest.approx(0.0, abs=1e-9)
    # What is left of a pure rotation is nothing; a direction already orthogonal is kept as it is.
    assert torch.allclose(_without_rotation(rotation_tangent, W), torch.zeros_like(W), atol=1e-9)
    torch.testing.assert_close(_without_rotation(projected, W), projected)


def test_polish_raises_the_exact_bound_and_keeps_factors_modular(
    planted_data: tuple[np.ndarray, np.ndarray], fitted: LinearCorex
) -> None:
    unpolished = LinearCorex(n_factors=5, device="cpu", random_state=0, polish_iter=0).fit(planted_data[0])
    assert unpolished.polish_n_iter_ == 0
    assert 0 < fitted.polish_n_iter_ <= 10
    assert fitted.tc_ > unpolished.tc_
    # Unconstrained, the polish rotated factors into mixtures and the attribution fell by 8%.
    assert fitted.tcs_.sum() == pytest.approx(unpolished.tcs_.sum(), rel=0.005)
    np.testing.assert_array_equal(fitted.assignments_, unpolished.assignments_)


def test_fit_does_not_import_torch_dynamo() -> None:
    # torch.optim imports torch._dynamo on first use: ~2 s per process, more than a 2000 x 500 fit.
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from instructlf_assets.core.corex import LinearCorex\n"
        "LinearCorex(2, device='cpu').fit(np.random.default_rng(0).standard_normal((50, 6)))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_negative_polish_iter_raises() -> None:
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(CorexInputError, match="polish_iter must be >= 0"):
        LinearCorex(n_factors=1, polish_iter=-1, device="cpu").fit(X)


def test_every_factor_is_oriented_so_that_its_own_variables_load_positively():
    """The bound cannot see a factor's sign; without orientation about half the factors come out reversed."""
    planted = Planted(groups=np.repeat(np.arange(4), 6), loadings=np.full(24, 0.8))  # all variables load +
    x, hidden = planted.sample(1500, seed=3)
    for seed in range(4):
        model = LinearCorex(4, random_state=seed, max_iter=300).fit(x)
        scores = model.transform(x)
        for j in range(4):
            own = model.assignments_ == j
            assert (model.weights_[j, own] > 0).all()
            assert (model.correlations_[j, own] > 0).all()
            planted_factor = np.bincount(planted.groups[own]).argmax()
            assert np.corrcoef(scores[:, j], hidden[:, planted_factor])[0, 1] > 0.8


def test_orientation_flips_a_factor_whose_weighted_variables_point_the_other_way():
    from instructlf_assets.core.corex import orientation

    correlations = np.array([[-0.9, -0.8, 0.1, 0.0], [0.05, 0.1, 0.7, -0.2]])
    mis = -0.5 * np.log(1 - correlations**2)
    assert orientation(correlations, mis).tolist() == [-1.0, 1.0]
    empty = np.array([[0.3, 0.2], [-0.1, -0.25]])  # factor 1 owns no variable: it follows its strongest
    assert orientation(empty, -0.5 * np.log(1 - empty**2)).tolist() == [1.0, -1.0]
