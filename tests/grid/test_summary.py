"""Merged chunk summaries equal a single in-memory computation, however the scenarios are split."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stressgrid.core import cvar_contributions, var_cvar
from stressgrid.grid import merge_partials, summarise, tail_metrics

ALPHAS = [0.9, 0.95, 0.99]


def _split(n, cuts):
    edges = sorted(set([0, n] + [c % n for c in cuts]))
    return list(zip(edges[:-1], edges[1:]))


def _merged(pnl, codes, w, pieces):
    parts = {}
    for a, b in pieces:
        for code, p in summarise(pnl[a:b], a, codes[a:b], w[a:b], 1 - min(ALPHAS)).items():
            parts.setdefault(code, []).append(p)
    return {c: merge_partials(ps) for c, ps in parts.items()}


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(5, 400),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    seed=st.integers(0, 2**31),
    ties=st.booleans(),
    weighted=st.booleans(),
)
def test_merge_equals_in_memory(n, cuts, seed, ties, weighted):
    rng = np.random.default_rng(seed)
    N = 4
    pnl = rng.standard_t(3, size=(n, N))
    if ties:
        pnl = np.round(pnl, 0)  # many equal totals
    codes = rng.integers(0, 2, size=n)
    w = rng.uniform(0.1, 1.0, size=n) if weighted else np.ones(n)
    for c in (0, 1):  # probabilities within each family
        if (codes == c).any():
            w[codes == c] /= w[codes == c].sum()
    merged = _merged(pnl, codes, w, _split(n, cuts))
    for c, p in merged.items():
        rows = codes == c
        x = pnl[rows].sum(axis=1)
        for a in ALPHAS:
            var, cvar, contrib = tail_metrics(p, a)
            ref_var, ref_cvar = var_cvar(x, a, w[rows])
            assert var == pytest.approx(ref_var, rel=1e-12, abs=1e-12)
            assert cvar == pytest.approx(ref_cvar, rel=1e-12, abs=1e-12)
            np.testing.assert_allclose(contrib, cvar_contributions(pnl[rows], a, w[rows]), rtol=1e-12, atol=1e-12)
        mean = w[rows] @ x
        assert p.mean == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert np.sqrt(p.m2 / p.weight) == pytest.approx(np.sqrt(w[rows] @ (x - mean) ** 2), rel=1e-10, abs=1e-12)
        assert p.worst_loss == pytest.approx(-x.min())


def test_a_chunk_keeps_only_its_tail():
    rng = np.random.default_rng(0)
    pnl = rng.normal(size=(10_000, 3))
    parts = summarise(pnl, 0, np.zeros(10_000, int), np.full(10_000, 1e-4), keep_mass=0.05)
    assert 500 <= len(parts[0].tail_index) <= 502  # 5% of the mass, not the whole chunk
