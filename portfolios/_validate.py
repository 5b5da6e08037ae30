"""Checks on the optimisers' inputs at the boundary (one clear ConfigError per problem)."""

from __future__ import annotations

import numpy as np

from stressgrid.core.errors import ConfigError, DataError

__all__ = ["check_returns", "check_sample_weight", "check_alpha", "check_choice"]


def check_returns(returns, name: str = "returns") -> np.ndarray:
    """A finite ``[S, N]`` float array with ``S >= 1`` and ``N >= 1``."""
    try:
        R = np.asarray(returns, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a numeric [scenarios, positions] array (got {type(returns).__name__})") from None
    if R.ndim != 2 or R.shape[0] < 1 or R.shape[1] < 1:
        raise ConfigError(f"{name}: expected a 2-d [scenarios, positions] array (got shape {R.shape})")
    bad = ~np.isfinite(R)
    if bad.any():
        s, i = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{name}[{s}, {i}]: must be finite (got {R[s, i]!r})")
    return R


def check_sample_weight(sample_weight, n_scenarios: int) -> np.ndarray | None:
    """Scenario probabilities ``[S]``: non-negative, summing to 1 (None: equal weights)."""
    if sample_weight is None:
        return None
    try:
        p = np.asarray(sample_weight, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"sample_weight: expected {n_scenarios} numbers (got {type(sample_weight).__name__})") from None
    if p.shape != (n_scenarios,):
        raise ConfigError(f"sample_weight: expected {n_scenarios} values, one per scenario (got shape {p.shape})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        i = int(np.flatnonzero(~np.isfinite(p) | (p < 0))[0])
        raise ConfigError(f"sample_weight[{i}]: must be finite and >= 0 (got {p[i]!r})")
    total = float(p.sum())
    if not np.isclose(total, 1.0, rtol=0, atol=1e-9):
        raise ConfigError(f"sample_weight: scenario probabilities must sum to 1 (got {total!r})")
    return p


def check_alpha(alpha) -> float:
    """A confidence level in (0, 1)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha: expected a confidence level in (0, 1) (got {alpha!r})") from None
    if not 0.0 < a < 1.0:
        raise ConfigError(f"alpha: expected a confidence level in (0, 1) (got {alpha!r})")
    return a


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {list(choices)} (got {value!r})")
    return value


def check_vector(name: str, value, n: int) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {n} numbers (got {value!r})") from None
    if a.shape != (n,):
        raise ConfigError(f"{name}: expected {n} values (got shape {a.shape})")
    if not np.all(np.isfinite(a)):
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ConfigError(f"{name}[{i}]: must be finite (got {a[i]!r})")
    return a
