"""Linear CorEx: Gaussian latent factors found by maximising a lower bound on total correlation.

Why this objective
------------------
Total correlation TC(X) = sum_i H(X_i) - H(X) measures all the redundancy among the observed variables.
A set of latent factors Y "explains" X when, conditioned on Y, the variables become independent. Writing
the factors as a noisy linear map of the standardized data, ``y = W x + e`` with ``e ~ N(0, I_m)``, gives
(Ver Steeg & Galstyan 2017, "Low complexity Gaussian latent factor models and a blessing of
dimensionality")::

    L(W) = sum_i I(X_i ; Y) - sum_j I(Y_j ; X)  =  TC(X) - TC(X | Y) - TC(Y)  <=  TC(X)

so maximising ``L`` simultaneously makes the factors explain as much dependence as possible
(``TC(X | Y) -> 0``) and keeps the factors themselves independent (``TC(Y) -> 0``). Because the noise is
independent Gaussian, every term has a closed form that only needs ``Sigma = corr(X)`` through the products
``W Sigma`` and ``W Sigma W^T``, so one step costs O(m n^2) (or O(N n m) from the data) instead of anything
cubic in ``n``. The closed forms are exact for Gaussian X (for other data they score the Gaussian with the
same correlations), and the gap ``TC(X|Y) + TC(Y)`` shrinks as more variables per factor are observed --
the "blessing of dimensionality".

Why a modular variant
---------------------
The exact bound hardly changes when factors of similar strength are rotated into one another, so on finite
samples it happily returns mixtures, and "which factor does variable i belong to" loses its meaning. By
default the estimator maximises a slightly smaller bound that only credits information each factor carries
on its own (see ``_modular_mi_x``); it coincides with L(W) on one-factor-per-variable solutions. ``tc_``
and :func:`total_correlation_bound` always report the exact L(W).

Why annealing
-------------
Early in optimisation the landscape has many poor local optima where a factor latches onto a few
variables. Fitting first against the covariance of noised data, ``Sigma_eps = (1 - eps^2) Sigma + eps^2 I``,
shrinks every correlation and smooths those optima away; decreasing ``eps`` to 0 then refines the solution
on the real covariance. ``W`` carries over from stage to stage.

Why a final polish
------------------
The modular bound's optimum leaves a little of the exact bound on the table (small cross-loadings). A short
L-BFGS run on the exact bound from there collects it in a few dozen evaluations. Each step has its component
along rotations of the factors removed: the exact bound barely changes under them, so a quasi-Newton method
would otherwise take long strides along them and turn the modular factors back into mixtures.

Nothing here imports Dagster: the estimator has the scikit-learn shape (``fit``/``transform``, learned
attributes with a trailing underscore) so it can be tested and benchmarked on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from instructlf_assets.core.errors import FactorModelError

__all__ = ["CorexInputError", "LinearCorex", "orientation", "total_correlation_bound"]

logger = logging.getLogger(__name__)

DEFAULT_ANNEAL_SCHEDULE: tuple[float, ...] = (0.6, 0.36, 0.2, 0.1, 0.0)
# 1 - q_i is the fraction of Var(X_i) left unexplained by Y. Clamping it keeps log() finite when a variable is
# (numerically) fully predicted -- e.g. duplicated columns, whose true TC is infinite. Past the clamp the
# I(X_i;Y) gradient vanishes while the I(Y_j;X) penalty keeps growing, so W cannot run away.
_MIN_RESIDUAL = 1e-6
# Convergence is judged on the improvement over this many Adam steps, not one: single steps of Adam are
# noisy in size and a one-step test would stop on a lull.
_CONVERGENCE_WINDOW = 25
# Stages with eps > 0 only have to bring W into the right basin for the next one, and the final stage (then the
# polish) decides the bound; judging them 10x more loosely cut a 2000 x 500 fit by a quarter at no cost in TC.
_ANNEAL_TOL_FACTOR = 10.0
_INIT_STD = 0.01
_DEFAULT_MAX_DENSE_VARS = 4096
_DEFAULT_CHUNK_ROWS = 8192
# Below this many multiply-adds per W Sigma product (m n^2 = 2.7e8, e.g. n = 2300 at m = 50), a step is a few
# BLAS calls of at most tens of milliseconds: extra threads save at most ~2x, while on a CPU shared with other
# processes their synchronisation made fits 5-50x slower in our measurements.
_SMALL_STEP_MACS = 2**28

SigmaProduct = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class _Stats:
    """All the objective and its gradient need from the data: M -> M Sigma for (m, n) M, and diag(Sigma)."""

    times_sigma: SigmaProduct
    variances: torch.Tensor

    def moments(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W Sigma, W Sigma W^T): one O(m n^2) (or O(N n m)) product, then an O(m^2 n) one."""
        w_sigma = self.times_sigma(weights)
        return w_sigma, w_sigma @ weights.T


class CorexInputError(FactorModelError, ValueError):
    """Bad input to Linear CorEx. A ``ValueError`` for scikit-learn-style callers, and a
    ``FactorModelError`` so the project's CLI reports it as one clear line."""


# --------------------------------------------------------------------------------------------------------
# Data preparation and the two ways of computing (W Sigma, W Sigma W^T)
# --------------------------------------------------------------------------------------------------------


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise CorexInputError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise CorexInputError("device='cuda' was requested but torch sees no CUDA device; use 'auto' or 'cpu'.")
    return torch.device(device)


def _check_array(X: np.ndarray | torch.Tensor, min_rows: int = 2) -> np.ndarray | torch.Tensor:
    """Shape and dtype checks that need no copy of X."""
    if not isinstance(X, torch.Tensor):
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise CorexInputError(f"X must be numeric, got dtype {X.dtype}; convert it with X.astype(float).")
    if X.ndim != 2:
        raise CorexInputError(
            f"X must be 2-D (n_samples x n_variables), got shape {tuple(X.shape)}; "
            "reshape a single sample with X.reshape(1, -1) or a single variable with X.reshape(-1, 1)."
        )
    if X.shape[0] < min_rows:
        raise CorexInputError(
            f"X needs at least {min_rows} row(s) (samples), got {X.shape[0]}; correlations need 2 or more."
        )
    return X


def _to_tensor(X: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The one N x n copy of the data that the estimator keeps (never the caller's array)."""
    tensor = torch.as_tensor(X).to(device=device, dtype=dtype, copy=True)
    column_sums = tensor.sum(dim=0, dtype=torch.float64)
    if not bool(torch.isfinite(column_sums).all()):
        bad = torch.nonzero(~torch.isfinite(tensor).all(dim=0)).flatten().tolist()
        shown = ", ".join(str(b) for b in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise CorexInputError(
            f"X contains NaN or infinite values in column(s) {shown}; impute or drop them before fitting."
        )
    return tensor


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's (process-wide) intra-op thread count; None leaves it alone."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _row_chunks(n_rows: int, chunk_rows: int) -> list[slice]:
    return [slice(start, min(start + chunk_rows, n_rows)) for start in range(0, n_rows, chunk_rows)]


def _standardize_inplace(data: torch.Tensor, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and scale columns in place; returns (mean, scale) in float64.

    A constant column has zero variance: its scale is set to 1 so it stays all zeros after centring. It then
    has zero variance and zero covariance with everything, so it contributes nothing to the objective.
    """
    n_rows = data.shape[0]
    mean = data.sum(dim=0, dtype=torch.float64) / n_rows
    data.sub_(mean.to(data.dtype))
    sum_sq = torch.zeros(data.shape[1], dtype=torch.float64, device=data.device)
    for rows in _row_chunks(n_rows, chunk_rows):
        sum_sq += data[rows].square().sum(dim=0, dtype=torch.float64)
    scale = torch.sqrt(sum_sq / n_rows)
    constant = scale <= torch.finfo(data.dtype).eps * torch.clamp(mean.abs(), min=1.0)
    scale = torch.where(constant, torch.ones_like(scale), scale)
    data.div_(scale.to(data.dtype))
    if bool(constant.any()):
        data[:, constant] = 0.0  # wipe rounding residue so the column is exactly uninformative
    return mean, scale


def _dense_product(sigma: torch.Tensor) -> SigmaProduct:
    """M Sigma from a precomputed n x n Sigma: O(m n^2) per call, independent of N."""

    def times_sigma(matrix: torch.Tensor) -> torch.Tensor:
        return matrix @ sigma

    return times_sigma


def _chunked_product(data: torch.Tensor, chunk_rows: int) -> SigmaProduct:
    """M Sigma = (X M^T)^T X / N straight from standardized data, never forming Sigma.

    Used when n is too large for an n x n matrix. Only chunk_rows x m projections are materialised, so the
    extra memory is independent of n_samples.
    """
    n_rows = data.shape[0]
    chunks = _row_chunks(n_rows, chunk_rows)

    def times_sigma(matrix: torch.Tensor) -> torch.Tensor:
        product = matrix.new_zeros(matrix.shape)
        for rows in chunks:
            block = data[rows]
            product = product + (block @ matrix.T).T @ block
        return product / n_rows

    return times_sigma


def _data_stats(data: torch.Tensor, dense: bool, chunk_rows: int) -> _Stats:
    """Statistics of standardized data; diag(Sigma) is 1 per variable, 0 for a constant column."""
    if dense:
        sigma = (data.T @ data) / data.shape[0]
        return _corr_stats(sigma)
    variances = torch.zeros(data.shape[1], dtype=data.dtype, device=data.device)
    for rows in _row_chunks(data.shape[0], chunk_rows):
        variances += data[rows].square().sum(dim=0)
    return _Stats(_chunked_product(data, chunk_rows), variances / data.shape[0])


def _corr_stats(sigma: torch.Tensor) -> _Stats:
    sigma = 0.5 * (sigma + sigma.T)
    return _Stats(_dense_product(sigma), torch.diagonal(sigma).clone())


# --------------------------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Terms:
    """Every term of L(W) under one Sigma_eps, plus the pieces the estimator reports."""

    mi_x: torch.Tensor  # (n,) I(X_i ; Y), or its modular lower bound
    mi_y: torch.Tensor  # (m,) I(Y_j ; X)
    w_sigma: torch.Tensor  # (m, n) Cov(Y_j, X_i)
    w_sigma_w: torch.Tensor  # (m, m) W Sigma_eps W^T = Cov(Y) - I
    variances: torch.Tensor  # (n,) Var(X_i): 1, or 0 for a constant column (eps^2 when noised)

    @property
    def bound(self) -> torch.Tensor:
        return self.mi_x.sum() - self.mi_y.sum()


def _correlations(w_sigma: torch.Tensor, w_sigma_w: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """(m, n) rho_ij = corr(Y_j, X_i); 0 for a constant variable, which correlates with nothing."""
    factor_var = torch.diagonal(w_sigma_w) + 1.0
    safe_var = torch.where(variances > 0, variances, torch.ones_like(variances))
    rho = w_sigma / torch.sqrt(factor_var[:, None] * safe_var[None, :])
    return torch.where(variances[None, :] > 0, rho, torch.zeros_like(rho))


def _exact_mi_x(w_sigma: torch.Tensor, w_sigma_w: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """I(X_i ; Y) = -1/2 log(1 - q_i / Var X_i), q_i = c_i^T Cov(Y)^-1 c_i the variance of X_i that Y
    explains. One Cholesky of the m x m Cov(Y) serves all n variables."""
    eye = torch.eye(w_sigma_w.shape[0], dtype=w_sigma_w.dtype, device=w_sigma_w.device)
    # Cov(Y) = W Sigma W^T + I >= I, so the factor always exists.
    chol = torch.linalg.cholesky(w_sigma_w + eye)
    whitened = torch.linalg.solve_triangular(chol, w_sigma, upper=False)
    explained = whitened.square().sum(dim=0)
    safe_var = torch.where(variances > 0, variances, torch.ones_like(variances))
    return -0.5 * torch.log(torch.clamp(1.0 - explained / safe_var, min=_MIN_RESIDUAL))


def _modular_mi_x(w_sigma: torch.Tensor, w_sigma_w: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """I(X_i ; Y) counting only what the factors tell about X_i one at a time, and never more than that.

    The non-synergistic value 1/2 log(1 + sum_j rho_ij^2 / (1 - rho_ij^2)) is what I(X_i ; Y) would be if
    the Y_j were conditionally independent given X_i. Because t / (1 - t) is convex, spreading one
    factor's correlation with X_i over several rotated factors lowers it, so it penalises mixtures. That
    matters because the exact bound is (nearly) invariant to rotating factors of similar strength into each
    other -- TC(X|Y) does not change -- and on finite samples its optimum is then an arbitrary mixture
    whose per-variable assignments mean nothing. The non-synergistic value over-counts *redundant*
    factors (two copies of one factor would double it), so we take the minimum with the exact I(X_i ; Y):
    redundancy is not rewarded either, and the result stays a lower bound on L(W), hence on TC(X). For a
    modular solution (each variable hangs off one factor) the two agree and nothing is lost.
    """
    rho_sq = _correlations(w_sigma, w_sigma_w, variances).square()
    rho_sq = torch.clamp(rho_sq, max=1.0 - _MIN_RESIDUAL)
    non_synergistic = 0.5 * torch.log1p((rho_sq / (1.0 - rho_sq)).sum(dim=0))
    return torch.minimum(_exact_mi_x(w_sigma, w_sigma_w, variances), non_synergistic)


def _bound_terms(weights: torch.Tensor, stats: _Stats, eps: float = 0.0, modular: bool = False) -> _Terms:
    """Every term of L(W) under Sigma_eps. The noise mixing is applied to the moments, so neither path
    ever forms Sigma_eps: W Sigma_eps = (1-eps^2) W Sigma + eps^2 W, likewise for W Sigma_eps W^T."""
    w_sigma, w_sigma_w = stats.moments(weights)
    variances = stats.variances
    if eps > 0.0:
        keep, noise = 1.0 - eps**2, eps**2
        w_sigma = keep * w_sigma + noise * weights
        w_sigma_w = keep * w_sigma_w + noise * (weights @ weights.T)
        variances = keep * variances + noise
    w_sigma_w = 0.5 * (w_sigma_w + w_sigma_w.T)
    mi_x = (_modular_mi_x if modular else _exact_mi_x)(w_sigma, w_sigma_w, variances)
    mi_y = 0.5 * torch.log1p(torch.diagonal(w_sigma_w))
    return _Terms(mi_x=mi_x, mi_y=mi_y, w_sigma=w_sigma, w_sigma_w=w_sigma_w, variances=variances)


def _value_and_gradient(
    weights: torch.Tensor, stats: _Stats, eps: float = 0.0, modular: bool = False
) -> tuple[float, torch.Tensor]:
    """The objective of :func:`_bound_terms` and its gradient in W, in closed form.

    Why not autograd: on the sizes this project fits, a step is a dozen small kernels and autograd's graph
    bookkeeping cost as much as the arithmetic (about half of a 2000 x 500 fit). By hand, a step is the two
    products it cannot avoid -- W Sigma_eps forward and G Sigma_eps backward -- plus O(m^2 n) work.
    ``tests/core/test_corex.py`` checks it against autograd on ``_bound_terms``.

    With A = W Sigma_eps, B = A W^T, C = B + I and v_i = Var(X_i): the exact I(X_i;Y) depends on
    q_i = a_i^T C^-1 a_i, and dq_i/dA = 2 C^-1 a_i, dq_i/dC = -C^-1 a_i a_i^T C^-1; the modular term on
    r_ji = A_ji^2 / (C_jj v_i). Then dW = dA Sigma_eps + 2 dB A (B is symmetric in W).
    """
    keep, noise = 1.0 - eps**2, eps**2
    w_sigma = stats.times_sigma(weights)
    variances = stats.variances
    if eps > 0.0:
        w_sigma = keep * w_sigma + noise * weights
        variances = keep * variances + noise
    w_sigma_w = w_sigma @ weights.T
    w_sigma_w = 0.5 * (w_sigma_w + w_sigma_w.T)
    factor_var = torch.diagonal(w_sigma_w) + 1.0
    informative = variances > 0
    safe_var = torch.where(informative, variances, torch.ones_like(variances))

    eye = torch.eye(w_sigma_w.shape[0], dtype=w_sigma_w.dtype, device=w_sigma_w.device)
    chol = torch.linalg.cholesky(w_sigma_w + eye)
    whitened = torch.linalg.solve_triangular(chol, w_sigma, upper=False)  # L^-1 A
    residual = 1.0 - whitened.square().sum(dim=0) / safe_var
    exact = -0.5 * torch.log(torch.clamp(residual, min=_MIN_RESIDUAL))
    d_exact = torch.where(residual > _MIN_RESIDUAL, 0.5 / (safe_var * residual), torch.zeros_like(residual))
    d_w_sigma = torch.zeros_like(w_sigma)
    d_factor_var = -0.5 / factor_var  # from -sum_j I(Y_j;X) = -1/2 sum_j log C_jj
    mi_x = exact
    if modular:
        rho_sq = w_sigma.square() / (factor_var[:, None] * safe_var[None, :])
        rho_sq = torch.where(informative[None, :], rho_sq, torch.zeros_like(rho_sq))
        open_sq = rho_sq < 1.0 - _MIN_RESIDUAL
        rho_sq = torch.clamp(rho_sq, max=1.0 - _MIN_RESIDUAL)
        odds = (rho_sq / (1.0 - rho_sq)).sum(dim=0)
        non_synergistic = 0.5 * torch.log1p(odds)
        use_exact = exact <= non_synergistic
        mi_x = torch.where(use_exact, exact, non_synergistic)
        d_exact = torch.where(use_exact, d_exact, torch.zeros_like(d_exact))
        d_rho_sq = torch.where(
            open_sq & ~use_exact[None, :], 0.5 / ((1.0 + odds)[None, :] * (1.0 - rho_sq) ** 2), torch.zeros_like(rho_sq)
        )
        d_w_sigma = 2.0 * d_rho_sq * w_sigma / (factor_var[:, None] * safe_var[None, :])
        d_factor_var = d_factor_var - (d_rho_sq * rho_sq).sum(dim=1) / factor_var
    solved = torch.linalg.solve_triangular(chol.T, whitened, upper=True)  # C^-1 A
    weighted = solved * d_exact[None, :]
    d_w_sigma = d_w_sigma + 2.0 * weighted
    d_w_sigma_w = -(weighted @ solved.T) + torch.diag(d_factor_var)
    grad = stats.times_sigma(d_w_sigma)
    if eps > 0.0:
        grad = keep * grad + noise * d_w_sigma
    grad = grad + 2.0 * (d_w_sigma_w @ w_sigma)
    value = mi_x.sum() - 0.5 * torch.log(factor_var).sum()
    return float(value), grad


def _looks_like_correlation(data: torch.Tensor) -> bool:
    """Square, symmetric, and a diagonal of ones (or zeros, for constant variables)."""
    if data.shape[0] != data.shape[1]:
        return False
    diag = torch.diagonal(data)
    unit_or_zero = bool(torch.all(((diag - 1.0).abs() < 1e-4) | (diag.abs() < 1e-4)))
    return unit_or_zero and bool(torch.allclose(data, data.T, atol=1e-5))


def total_correlation_bound(
    data: np.ndarray | torch.Tensor,
    weights: np.ndarray | torch.Tensor,
    *,
    is_corr: bool | None = None,
    convention: str = "unit_noise",
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> float:
    """The Linear CorEx lower bound L(W) = sum_i I(X_i;Y) - sum_j I(Y_j;X) on TC(X), in nats, for any W.

    This is the yardstick for comparing factor models: a W learned by another library (or a random one) is
    scored under exactly the bound that :class:`LinearCorex` reports as ``tc_``, so a higher value means more
    of the data's total correlation is provably captured by ``y = W x + e, e ~ N(0, I)``. It is always the
    exact bound, never the modular lower bound the estimator optimises by default.

    Args:
        data: either samples, shape (n_samples, n_variables), raw or already standardized -- they are
            standardized here (population std, constant columns become zeros), which is idempotent on
            standardized data; or a correlation matrix, shape (n_variables, n_variables), unit diagonal.
        weights: (n_factors, n_variables), acting on *standardized* variables (e.g. ``LinearCorex.weights_``).
        is_corr: whether ``data`` is a correlation matrix. ``None`` guesses: square, symmetric and with a
            unit (or zero) diagonal means correlation. Pass it explicitly when n_samples == n_variables.
        convention: how ``weights`` scale the factors. "unit_noise" (ours): ``y = W x + e``, ``e ~ N(0, I)``.
            "unit_variance": each factor is normalised to unit total variance, ``y_j = w_j x +
            sqrt(1 - w_j Sigma w_j^T) e_j`` (as other Linear CorEx implementations report W); dividing
            w_j by sqrt(1 - w_j Sigma w_j^T) gives the same model in the unit-noise form, which is scored.
        device: "cpu", "cuda" or "auto".
        dtype: evaluation precision; float64 by default because this is a one-off referee score.
    """
    torch_device = _resolve_device(device)
    array = _check_array(data)
    w = torch.as_tensor(weights if isinstance(weights, torch.Tensor) else np.asarray(weights))
    w = w.to(device=torch_device, dtype=dtype)
    if w.ndim != 2 or w.shape[1] != array.shape[1]:
        raise CorexInputError(
            f"weights must have shape (n_factors, {array.shape[1]}) to match data, got {tuple(w.shape)}."
        )
    values = _to_tensor(array, torch_device, dtype)
    if is_corr is None:
        is_corr = _looks_like_correlation(values)
    if is_corr:
        stats = _corr_stats(values)
    else:
        _standardize_inplace(values, _DEFAULT_CHUNK_ROWS)
        dense = values.shape[1] <= _DEFAULT_MAX_DENSE_VARS
        stats = _data_stats(values, dense, _DEFAULT_CHUNK_ROWS)
    with torch.no_grad():
        return float(_bound_terms(_to_unit_noise(w, stats, convention), stats).bound)


def _to_unit_noise(weights: torch.Tensor, stats: _Stats, convention: str) -> torch.Tensor:
    if convention == "unit_noise":
        return weights
    if convention != "unit_variance":
        raise CorexInputError(f"convention must be 'unit_noise' or 'unit_variance', got {convention!r}.")
    signal = torch.diagonal(stats.moments(weights)[1])
    if bool((signal >= 1.0).any()):
        raise CorexInputError(
            "With convention='unit_variance' every w_j Sigma w_j^T must be < 1 (the rest is noise), got "
            f"max {float(signal.max()):.4g}; these weights look like convention='unit_noise'."
        )
    return weights / torch.sqrt(1.0 - signal)[:, None]


# --------------------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schedule:
    anneal: tuple[float, ...]
    max_iter: int
    tol: float
    learning_rate: float
    modular: bool


@dataclass
class _StageResult:
    history: list[float]
    converged: bool


@dataclass
class _FitResult:
    weights: torch.Tensor
    bound: float
    history: list[float]
    stage_n_iter: list[int]
    converged: bool
    polish_n_iter: int = 0


def _has_converged(best: Sequence[float], tol: float) -> bool:
    """The best objective so far improved by less than tol (relative) over the last window of steps.

    Judging the running best over a window, not the last step, keeps Adam's oscillations from ending a stage
    early (a dip is not a plateau) or late (a lucky spike is not progress). The 1-nat floor on the scale
    makes the test absolute for tiny objectives (data with almost no dependence), where relative change
    is noise.
    """
    if len(best) <= _CONVERGENCE_WINDOW:
        return False
    gain = best[-1] - best[-1 - _CONVERGENCE_WINDOW]
    return gain <= tol * max(abs(best[-1]), 1.0)


class _Adam:
    """Adam on the single tensor W, by hand.

    ``torch.optim`` imports ``torch._dynamo`` on first use, which cost ~2.3 s per process here -- longer than a
    whole fit on a 2000 x 500 matrix -- and its per-step bookkeeping is built for many parameter groups.
    """

    def __init__(self, weights: torch.Tensor, learning_rate: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.learning_rate = learning_rate
        self.beta1, self.beta2 = betas
        self.first = torch.zeros_like(weights)
        self.second = torch.zeros_like(weights)
        self.steps = 0

    def step(self, weights: torch.Tensor, grad: torch.Tensor) -> None:
        """One ascent step (``grad`` is the gradient of the objective to maximise)."""
        self.steps += 1
        self.first.lerp_(grad, 1.0 - self.beta1)
        self.second.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        step_size = self.learning_rate / (1.0 - self.beta1**self.steps)
        denom = (self.second / (1.0 - self.beta2**self.steps)).sqrt_().add_(1e-8)
        weights.addcdiv_(self.first, denom, value=step_size)


def _run_stage(weights: torch.Tensor, optimizer: _Adam, stats: _Stats, eps: float, plan: _Schedule) -> _StageResult:
    """Full-batch Adam on the objective under Sigma_eps; leaves ``weights`` at the best W seen.

    Returning the best rather than the last W matters at the final stage: Adam never settles exactly, and
    tc_ should be the bound of the best solution the stage found.
    """
    tol = plan.tol if eps == 0.0 else plan.tol * _ANNEAL_TOL_FACTOR
    history: list[float] = []
    best_so_far: list[float] = []
    best_weights = weights.clone()
    for _ in range(plan.max_iter):
        value, grad = _value_and_gradient(weights, stats, eps, plan.modular)
        if not best_so_far or value > best_so_far[-1]:
            best_weights.copy_(weights)  # the W that produced `value`, before this step
        history.append(value)
        best_so_far.append(max(value, best_so_far[-1]) if best_so_far else value)
        if _has_converged(best_so_far, tol):
            break
        optimizer.step(weights, grad)
    weights.copy_(best_weights)
    return _StageResult(history=history, converged=_has_converged(best_so_far, tol))


def _anneal(init: torch.Tensor, stats: _Stats, plan: _Schedule, log_level: int) -> _FitResult:
    """One restart: every annealing stage in turn, then the exact bound at eps = 0.

    W and the Adam state both carry over between stages: the landscape moves only a little from one eps to
    the next, whereas a fresh Adam takes lr-sized steps in every coordinate at first, whatever the
    gradient, and would knock a nearly optimal W off its optimum at the start of each stage.
    """
    weights = init.clone()
    optimizer = _Adam(weights, plan.learning_rate)
    history: list[float] = []
    stage_n_iter: list[int] = []
    stage = _StageResult(history=[], converged=False)
    for eps in plan.anneal:
        stage = _run_stage(weights, optimizer, stats, eps, plan)
        history.extend(stage.history)
        stage_n_iter.append(len(stage.history))
        logger.log(
            log_level,
            "LinearCorex eps=%.3f: %d steps, best objective %.4f nats, converged=%s",
            eps,
            len(stage.history),
            max(stage.history),
            stage.converged,
        )
    bound = _value_and_gradient(weights, stats)[0]
    return _FitResult(weights, bound, history, stage_n_iter, stage.converged)


_LBFGS_MEMORY = 10


def _polish(weights: torch.Tensor, stats: _Stats, max_iter: int) -> tuple[torch.Tensor, float, int]:
    """A few L-BFGS iterations on the exact bound, from the annealed (modular) optimum.

    The modular bound does not credit the small cross-loadings by which one factor explains a little of
    another factor's variables, so its optimum sits just below what the exact bound can reach from there
    (about 0.2% on planted data). Quasi-Newton steps recover that in under 10 iterations where Adam needs hundreds.
    The exact bound is nearly flat along rotations of the factors, where L-BFGS's curvature estimate is tiny
    and its steps huge: unconstrained, 20 iterations mixed the planted factors enough to cut the per-factor
    attribution ``tcs_`` by 8% for a 0.02% gain in bound. Steps are therefore kept orthogonal to rotations
    (:func:`_without_rotation`). Written in torch (not scipy) so it stays on the fit's device. Returns (W,
    exact bound, accepted steps); the bound never decreases, since every accepted step passes an Armijo test.
    """
    value, grad = _value_and_gradient(weights, stats)
    history: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    n_steps = 0
    for _ in range(max_iter):
        direction = _without_rotation(_lbfgs_direction(grad, history), weights)
        slope = float((direction * grad).sum())
        if not slope > 0.0:  # numerically flat: nothing left to gain uphill
            break
        step = 1.0 if history else min(1.0, 0.01 / float(direction.abs().max()))
        while step > 1e-10:
            candidate = weights + step * direction
            new_value, new_grad = _value_and_gradient(candidate, stats)
            if np.isfinite(new_value) and new_value >= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        curvature = float(((new_grad - grad) * (candidate - weights)).sum())
        if curvature < 0.0:  # an ascent problem: y = -(g_new - g_old) pairs with s for the usual update
            history = [*history[-(_LBFGS_MEMORY - 1) :], (candidate - weights, grad - new_grad, -1.0 / curvature)]
        weights, value, grad = candidate, new_value, new_grad
        n_steps += 1
    return weights, value, n_steps


def _without_rotation(direction: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``direction`` minus its least-squares component K W along infinitesimal rotations (K antisymmetric).

    Solving min ||direction - K W|| over antisymmetric K gives K G + G K = D W^T - W D^T with G = W W^T, a
    Lyapunov equation that G's eigenbasis diagonalises.
    """
    gram = weights @ weights.T
    values, vectors = torch.linalg.eigh(gram)
    skew = direction @ weights.T
    skew = vectors.T @ (skew - skew.T) @ vectors
    rotation = vectors @ (skew / (values[:, None] + values[None, :]).clamp(min=1e-12)) @ vectors.T
    return direction - rotation @ weights


def _lbfgs_direction(grad: torch.Tensor, history: list[tuple[torch.Tensor, torch.Tensor, float]]) -> torch.Tensor:
    """The two-loop recursion: an approximate inverse Hessian (of the negated bound) applied to the gradient."""
    direction = grad.clone()
    alphas: list[float] = []
    for step, change, rho in reversed(history):
        alpha = rho * float((step * direction).sum())
        direction -= alpha * change
        alphas.append(alpha)
    if history:
        step, change, _ = history[-1]
        direction *= float((step * change).sum()) / float((change * change).sum())
    for (step, change, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * float((change * direction).sum())
        direction += (alpha - beta) * step
    return direction


# --------------------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------------------


def orientation(correlations: np.ndarray, mis: np.ndarray) -> np.ndarray:
    """(m,) signs that make each factor point the way its own variables do.

    The bound is blind to the sign of a factor (``-y`` explains X exactly as well as ``y``), so an unoriented
    factor named after "stunning visuals" scores a stunning review lowest half the time. Each factor gets the
    sign under which its assigned variables correlate positively with it, weighted by how much each one tells
    (its ``mis_``), so its strongest variables load positively; a factor with no variable of its own follows
    the one it shares most information with.
    """
    assigned = np.argmax(mis, axis=0)
    signs = np.ones(correlations.shape[0])
    for j in range(correlations.shape[0]):
        own = assigned == j
        if own.any():
            pull = float(np.sum(mis[j, own] * np.sign(correlations[j, own])))
        else:
            strongest = int(np.argmax(mis[j]))
            pull = float(np.sign(correlations[j, strongest]))
        signs[j] = -1.0 if pull < 0 else 1.0
    return signs


class LinearCorex(BaseEstimator):
    """Linear CorEx latent factor model (scikit-learn estimator shape; torch inside; numpy outside).

    Finds ``n_factors`` Gaussian factors ``y = W x + e`` whose bound ``sum_i I(X_i;Y) - sum_j I(Y_j;X)`` on
    the total correlation of the standardized data is as high as possible (see the module docstring for
    why this bound, and why it is annealed).

    Parameters:
        n_factors: number of latent factors m, 1 <= m <= n_variables, and fewer than n_samples.
        anneal_schedule: decreasing noise levels eps in [0, 1); the last must be 0 so the final fit, and
            ``tc_``, are on the real covariance.
        max_iter: Adam steps per annealing stage at most.
        tol: a stage stops once its best objective improved by less than ``tol`` (relative, floored at
            1 nat) over the last 25 steps -- ``10 * tol`` for the stages with eps > 0, which only set up
            the next one; each stage hands on the best W it saw.
        learning_rate: Adam step size on the entries of W.
        n_restarts: independent random initialisations; the one with the highest final bound is kept.
        random_state: seed of restart r is ``random_state + r``; ``None`` draws fresh entropy.
        device: "auto" (cuda if available), "cpu" or "cuda".
        dtype: torch float dtype of all computation.
        verbose: log one INFO line per stage (otherwise DEBUG).
        modular: optimise a modular lower bound of L(W) (see ``_modular_mi_x``) in which each I(X_i;Y)
            counts only what the factors tell about X_i one at a time, capped by the exact value. The exact
            bound barely distinguishes rotations of factors of similar strength, so without this the factors
            found are often mixtures of the planted ones and ``assignments_`` are arbitrary. The two agree on
            modular solutions, so little bound is lost (well under 1% on planted data). ``tc_`` is always
            the exact bound. Set False to maximise the exact bound itself.
        max_dense_vars: with at most this many variables, Sigma (n x n) is precomputed once and each step
            costs O(m n^2); above it, W Sigma is computed from the data in row chunks, O(N n m) per step but
            memory linear in n.
        chunk_rows: rows per chunk on the chunked path, during standardization and in ``transform``.
        n_threads: torch intra-op threads for the CPU optimisation loop (restored afterwards). ``None``:
            1 thread when a step is small (under 2**28 multiply-adds -- m * n^2 < 2.7e8 on the dense
            path), where threads gain at most ~2x and, on a CPU shared with other processes, cost a 5-50x
            slowdown; otherwise torch's current setting.
        polish_iter: at most this many L-BFGS iterations on the exact bound after annealing, never along
            rotations of the factors (see ``_polish``); they add the small cross-loadings the modular bound
            does not credit, so ``tc_`` ends at or above the modular optimum's exact bound. On the benchmark
            matrices the bound stops moving (to 1e-6 relative) after about 8; 10 leaves a margin. 0 skips.

    Learned attributes:
        weights_: (m, n) float32, W on standardized variables, each row signed by ``orientation`` so that a
            higher factor score means more of the variables assigned to it.
        correlations_: (m, n) rho_ij = corr(X_i, Y_j) on the training data, signed like ``weights_``.
        mean_, scale_: (n,) column mean and population std used to standardize; scale_ is 1 for a constant
            column, which therefore stays all zeros, carries no information (all its ``mis_`` are 0) and is
            assigned to factor 0 by the argmax.
        mis_: (m, n) I(X_i ; Y_j) = -1/2 log(1 - rho_ij^2), rho_ij = corr(X_i, Y_j), in nats.
        assignments_: (n,) int, the factor sharing most information with each variable (argmax of mis_).
        tc_: exact bound L(W) at eps=0 for the final W, in nats; a lower bound on the TC of a Gaussian with
            the data's correlation matrix.
        tcs_: (m,) an *attribution* of tc_ to factors: sum of ``mis_[j, i]`` over the variables assigned to
            j, minus I(Y_j ; X). It is not itself a bound; it sums to roughly tc_ when each variable is
            explained mainly by one factor (a modular solution), and to less when information is shared.
        factor_std_: (m,) sqrt(w_j Sigma w_j^T + 1), the std of Y_j including its unit noise.
        converged_: whether the final (eps=0) stage met ``tol`` before ``max_iter``.
        n_iter_: total Adam steps over all stages of the kept restart.
        history_: the optimised objective (the modular bound when ``modular``) per step over *all*
            stages of the kept restart; a stage with eps > 0 scores the noised covariance, so values are
            comparable only within a stage.
        stage_n_iter_: steps per stage, to split ``history_``.
        polish_n_iter_: accepted L-BFGS steps of the final polish (not in ``history_`` or ``n_iter_``).
    """

    def __init__(
        self,
        n_factors: int,
        *,
        anneal_schedule: Sequence[float] = DEFAULT_ANNEAL_SCHEDULE,
        max_iter: int = 1000,
        tol: float = 1e-5,
        learning_rate: float = 0.02,
        n_restarts: int = 1,
        random_state: int | None = 0,
        device: str = "auto",
        dtype: torch.dtype = torch.float32,
        verbose: bool = False,
        modular: bool = True,
        max_dense_vars: int = _DEFAULT_MAX_DENSE_VARS,
        chunk_rows: int = _DEFAULT_CHUNK_ROWS,
        n_threads: int | None = None,
        polish_iter: int = 10,
    ) -> None:
        self.n_factors = n_factors
        self.anneal_schedule = anneal_schedule
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.n_restarts = n_restarts
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.modular = modular
        self.max_dense_vars = max_dense_vars
        self.chunk_rows = chunk_rows
        self.n_threads = n_threads
        self.polish_iter = polish_iter

    # ---- validation ---------------------------------------------------------------------------------

    def _plan(self) -> _Schedule:
        """Validated optimisation settings (the constructor only stores, as scikit-learn requires)."""
        schedule = tuple(float(e) for e in self.anneal_schedule)
        if not schedule or schedule[-1] != 0.0 or any(not 0.0 <= e < 1.0 for e in schedule):
            raise CorexInputError(f"anneal_schedule must be non-empty values in [0, 1) ending in 0.0, got {schedule}.")
        for name in ("max_iter", "n_restarts", "max_dense_vars", "chunk_rows"):
            if int(getattr(self, name)) < 1:
                raise CorexInputError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.learning_rate > 0 or not self.tol >= 0:
            raise CorexInputError(f"learning_rate must be > 0 and tol >= 0, got {self.learning_rate} and {self.tol}.")
        if int(self.polish_iter) < 0:
            raise CorexInputError(f"polish_iter must be >= 0, got {self.polish_iter}.")
        if self.n_threads is not None and int(self.n_threads) < 1:
            raise CorexInputError(f"n_threads must be None or >= 1, got {self.n_threads}.")
        if self.dtype not in (torch.float32, torch.float64):
            raise CorexInputError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}.")
        return _Schedule(schedule, int(self.max_iter), float(self.tol), float(self.learning_rate), self.modular)

    def _check_shape(self, n_samples: int, n_variables: int) -> None:
        m = self.n_factors
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
            raise CorexInputError(f"n_factors must be a positive integer, got {m!r}.")
        if m > n_variables:
            raise CorexInputError(
                f"n_factors={m} exceeds the number of variables ({n_variables}); a factor model needs at "
                "most one factor per variable. Lower n_factors."
            )
        if n_samples <= m:
            raise CorexInputError(
                f"The corpus is too small for the requested number of factors: {n_samples} samples for "
                f"n_factors={m}. Use more samples than factors (ideally many more) or lower n_factors."
            )

    # ---- fitting ------------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: object = None) -> LinearCorex:
        """Standardize X (n_samples x n_variables) and anneal W towards the best TC bound.

        ``y`` is ignored (scikit-learn pipeline compatibility).
        """
        plan = self._plan()
        X = _check_array(X)
        self._check_shape(*X.shape)
        device = _resolve_device(self.device)
        data = _to_tensor(X, device, self.dtype)
        mean, scale = _standardize_inplace(data, int(self.chunk_rows))
        n_samples, n_variables = X.shape
        dense = n_variables <= int(self.max_dense_vars)
        stats = _data_stats(data, dense, int(self.chunk_rows))
        del data  # on the dense path Sigma holds all the fit needs; otherwise stats keeps the data alive
        macs = int(self.n_factors) * n_variables * (n_variables if dense else n_samples)
        with _torch_threads(self._loop_threads(macs, device)):
            best = self._best_restart(stats, plan, (int(self.n_factors), n_variables), device)
            self._store(best, stats, mean, scale)
        return self

    def _loop_threads(self, macs_per_product: int, device: torch.device) -> int | None:
        if device.type != "cpu":
            return None
        if self.n_threads is not None:
            return int(self.n_threads)
        return 1 if macs_per_product < _SMALL_STEP_MACS else None

    def _seed(self, restart: int) -> torch.Generator:
        generator = torch.Generator(device="cpu")
        if self.random_state is None:
            generator.seed()
        else:
            generator.manual_seed(int(self.random_state) + restart)
        return generator

    def _best_restart(self, stats: _Stats, plan: _Schedule, shape: tuple[int, int], device: torch.device) -> _FitResult:
        """Small random inits: near W = 0 the objective is ~ 1/2 sum_j w_j (Sigma^2 - Sigma) w_j^T, so the
        first steps grow W along the strongest correlation directions whatever the exact start."""
        level = logging.INFO if self.verbose else logging.DEBUG
        best: _FitResult | None = None
        for restart in range(int(self.n_restarts)):
            init = torch.randn(shape, generator=self._seed(restart), dtype=torch.float64) * _INIT_STD
            result = _anneal(init.to(device=device, dtype=self.dtype), stats, plan, level)
            if int(self.polish_iter) > 0:  # before comparing: restarts are ranked on the bound they report
                weights, bound, n_iter = _polish(result.weights, stats, int(self.polish_iter))
                logger.log(level, "LinearCorex polish: %d L-BFGS steps, +%.4f nats", n_iter, bound - result.bound)
                result = replace(result, weights=weights, bound=bound, polish_n_iter=n_iter)
            logger.log(level, "LinearCorex restart %d: bound %.4f nats", restart, result.bound)
            if best is None or result.bound > best.bound:
                best = result
        assert best is not None
        return best

    def _store(self, result: _FitResult, stats: _Stats, mean: torch.Tensor, scale: torch.Tensor) -> None:
        with torch.no_grad():
            terms = _bound_terms(result.weights, stats)
            rho = _correlations(terms.w_sigma, terms.w_sigma_w, terms.variances)
            mis = -0.5 * torch.log(torch.clamp(1.0 - rho.square(), min=_MIN_RESIDUAL))
        signs = orientation(rho.cpu().numpy().astype(np.float64), mis.cpu().numpy().astype(np.float64))
        self.weights_ = (result.weights.cpu().numpy() * signs[:, None]).astype(np.float32)
        self.correlations_ = rho.cpu().numpy().astype(np.float64) * signs[:, None]
        self.mean_ = mean.cpu().numpy()
        self.scale_ = scale.cpu().numpy()
        self.mis_ = mis.cpu().numpy().astype(np.float64)
        self.assignments_ = np.argmax(self.mis_, axis=0).astype(np.int64)
        self.factor_std_ = np.sqrt(torch.diagonal(terms.w_sigma_w).cpu().numpy().astype(np.float64) + 1.0)
        self.tc_ = result.bound
        own = self.assignments_[None, :] == np.arange(self.weights_.shape[0])[:, None]
        self.tcs_ = (self.mis_ * own).sum(axis=1) - terms.mi_y.cpu().numpy().astype(np.float64)
        self.converged_ = result.converged
        self.n_iter_ = len(result.history)
        self.history_ = result.history
        self.stage_n_iter_ = result.stage_n_iter
        self.polish_n_iter_ = result.polish_n_iter
        self.n_features_in_ = self.weights_.shape[1]

    # ---- scoring ------------------------------------------------------------------------------------

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Factor scores for new rows, float32 (n_samples x n_factors).

        Each score is the noiseless part w_j x of Y_j divided by Y_j's total std, so factors with large and
        small weights land on one comparable, nearly unit scale (variance SNR / (1 + SNR) on the training
        data).
        """
        if not hasattr(self, "weights_"):
            raise NotFittedError("This LinearCorex instance is not fitted yet; call fit(X) first.")
        X = _check_array(X, min_rows=1)
        if X.shape[1] != self.n_features_in_:
            raise CorexInputError(
                f"X must have shape (n_samples, {self.n_features_in_}) like the training data, got {tuple(X.shape)}."
            )
        weights = self.weights_.T.astype(np.float64)
        scores = np.empty((X.shape[0], weights.shape[1]), dtype=np.float32)
        for rows in _row_chunks(X.shape[0], int(self.chunk_rows)):
            standardized = (np.asarray(X[rows], dtype=np.float64) - self.mean_) / self.scale_
            if not np.isfinite(standardized).all():
                raise CorexInputError("X contains NaN or infinite values; impute or drop them before transform.")
            scores[rows] = (standardized @ weights) / self.factor_std_
        return scores

    def fit_transform(self, X: np.ndarray, y: object = None) -> np.ndarray:
        """fit(X) then transform(X); ``y`` is ignored (scikit-learn pipeline compatibility)."""
        return self.fit(X).transform(X)
