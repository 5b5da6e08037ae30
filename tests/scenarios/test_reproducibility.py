"""The same seed gives identical scenarios however the family is split into blocks or tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid import scenarios
from stressgrid.scenarios import BLOCK_SIZE

W = {"end": "2017-03-29", "lookback_days": 300}
CASES = [
    dict(kind="montecarlo", model="student_t", n_scenarios=2 * BLOCK_SIZE + 123),
    dict(kind="montecarlo", model="gaussian", n_scenarios=BLOCK_SIZE + 5, horizon_days=3, paths=True),
    dict(kind="montecarlo", model="garch_t", correlation="dcc", n_scenarios=BLOCK_SIZE + 7, horizon_days=2),
    dict(kind="montecarlo", model="fhs", n_scenarios=BLOCK_SIZE + 7, horizon_days=2,
         amplify={"correlation": {"targets": [{"a": "equity", "b": "rates", "value": 0.5}]}, "liquidity": {"spread_mult": 2}}),
    dict(kind="bootstrap", n_scenarios=BLOCK_SIZE + 11, horizon_days=4),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.get("model", c["kind"]))
def test_blocks_and_ranges_equal_the_whole(spec, history, factors, market, case):
    s = spec(dict(case, name="f", window=W))
    seed = np.random.SeedSequence(2024).spawn(3)[1]  # a child seed, as the grid passes it
    whole = scenarios.generate(s, history, factors, seed, market)
    assert len(whole) == s.n_scenarios and np.isclose(whole.weights.sum(), 1.0)
    fitted = scenarios.fit(s, history, factors, market)
    # block by block, in reverse order (a worker may generate any block first)
    blocks = {b: scenarios.generate_block(s, fitted, b, seed) for b in reversed(range(scenarios.n_blocks(s.n_scenarios)))}
    stacked = np.concatenate([blocks[b][0] for b in sorted(blocks)])[: s.n_scenarios]
    assert np.array_equal(stacked, whole.shocks)
    # arbitrary task ranges crossing block edges
    edges = [0, 17, BLOCK_SIZE - 1, BLOCK_SIZE + 3, s.n_scenarios]
    parts = [scenarios.generate_range(s, history, factors, seed, a, b, market) for a, b in zip(edges[:-1], edges[1:])]
    assert np.array_equal(np.concatenate([p.shocks for p in parts]), whole.shocks)
    if whole.paths is not None:
        assert np.array_equal(np.concatenate([p.paths for p in parts]), whole.paths)
    assert sum(p.weights.sum() for p in parts) == pytest.approx(1.0)
    assert tuple(n for p in parts for n in p.names) == whole.names
    # what a streamed task draws: the fitted model and the family's info, without the history
    info = scenarios.family_info(s, fitted, history.source)
    drawn = [scenarios.draw_range(s, fitted, seed, info, a, b) for a, b in zip(edges[:-1], edges[1:])]
    assert np.array_equal(np.concatenate([p.shocks for p in drawn]), whole.shocks)
    assert all(p.paths is None for p in drawn)
    assert np.array_equal(np.concatenate([p.covered for p in drawn]), whole.covered)
    clock = ["garch_fit_seconds"]  # the fit's wall-clock time: the whole generation fitted again
    pd.testing.assert_frame_equal(pd.concat([p.info for p in drawn], ignore_index=True).drop(columns=clock, errors="ignore"),
                                  whole.info.drop(columns=clock, errors="ignore"))
    pd.testing.assert_frame_equal(pd.concat([p.liquidity_table() for p in drawn], ignore_index=True),
                                  whole.liquidity_table())
    # another seed gives other numbers; the same seed (a fresh SeedSequence object) the same
    again = scenarios.generate(s, history, factors, np.random.SeedSequence(2024).spawn(3)[1], market)
    assert np.array_equal(again.shocks, whole.shocks)
    other = scenarios.generate(s, history, factors, np.random.SeedSequence(2025).spawn(3)[1], market)
    assert not np.array_equal(other.shocks, whole.shocks)


def test_predictive_draws_reproducible(spec, history, factors, market):
    s = spec(dict(kind="predictive", name="p", n_draws=50, distribution="student_t", dof=5,
                  stresses=[{"name": "a", "shocks": {"EQ.SPX": "-10%"}}, {"name": "b", "shocks": {"CMD.WTI": "-40%"}}]))
    one = scenarios.generate(s, history, factors, np.random.SeedSequence(7), market)
    two = scenarios.generate(s, history, factors, np.random.SeedSequence(7), market)
    assert np.array_equal(one.shocks, two.shocks)


CUT_CASES = CASES + [
    dict(kind="montecarlo", model="garch_t", correlation="constant", n_scenarios=BLOCK_SIZE + 7, horizon_days=2),
    dict(kind="montecarlo", model="student_t", n_scenarios=BLOCK_SIZE + 9, horizon_days=3, paths=True,
         guard={"max_multiple": 1.5, "cap": True}),
]


@pytest.mark.parametrize("case", CUT_CASES, ids=lambda c: "-".join(str(c.get(k)) for k in ("model", "correlation", "paths")))
def test_a_cut_block_equals_the_whole_blocks_first_rows(spec, history, factors, market, case):
    """The family's last block computes its own rows only: they have the bits of the whole block's first rows."""
    s = spec(dict(case, name="f", window=W))
    seed = np.random.SeedSequence(11).spawn(2)[1]
    fitted = scenarios.fit(s, history, factors, market)
    last = scenarios.n_blocks(s.n_scenarios) - 1
    whole = scenarios.generate_block(s, fitted, last, seed, guard_rows=True)
    for rows in (1, 7, 300):
        cut = scenarios.generate_block(s, fitted, last, seed, guard_rows=True, rows=rows)
        assert cut[0].shape == (rows, whole[0].shape[1])
        assert np.array_equal(cut[0], whole[0][:rows])
        if whole[1] is not None:
            assert np.array_equal(cut[1], whole[1][:rows])
        if whole[2] is not None:
            assert np.array_equal(cut[2].rows(0, rows).multiple, whole[2].rows(0, rows).multiple)
            assert np.array_equal(cut[2].rows(0, rows).implausible, whole[2].rows(0, rows).implausible)
    for bad in (0, BLOCK_SIZE + 1):
        with pytest.raises(ValueError, match="rows must be in"):
            scenarios.generate_block(s, fitted, last, seed, rows=bad)


@pytest.mark.parametrize("model", ["garch_t", "fhs"])
def test_a_cut_block_with_derived_factors_equals_the_whole_blocks_first_rows(spec, history, factors, model):
    """Factors that move exactly with others (a proxy without residual) are derived from the fitted ones by a
    matrix product: in a cut block it runs over the whole block's rows too, so the cut rows keep their bits."""
    from dataclasses import replace

    lv = history.levels.copy()
    dup = [f"EQ.DUP{k}" for k in range(3)]
    for k, name in enumerate(dup):  # log moves: (k + 2) x SPX's plus AAPL's
        lv[name] = lv["EQ.SPX"] ** (k + 2) * lv["EQ.AAPL"]
    h = replace(history, levels=lv)
    s = spec(dict(kind="montecarlo", model=model, name="f", window=W, n_scenarios=BLOCK_SIZE + 7, horizon_days=3,
                  **({"correlation": "dcc"} if model == "garch_t" else {})))
    fitted = scenarios.fit(s, h, factors + dup)
    assert fitted.derived is not None and fitted.info["derived_factors"] == ",".join(dup)
    seed = np.random.SeedSequence(3)
    whole = scenarios.generate_block(s, fitted, 1, seed)
    for rows in (1, 123, 1001):
        assert np.array_equal(scenarios.generate_block(s, fitted, 1, seed, rows=rows)[0], whole[0][:rows])


def test_dcc_paths_follow_the_textbook_recursion():
    """The in-place DCC path update gives the bits of the recursion written as in [E02]: ``R_t`` from ``Q_t``,
    ``z_t`` from the Gaussian copula of ``L_t n_t``, ``Q_{t+1} = (1-a-b) Qbar + a z_t z_t' + b Q_t``."""
    from stressgrid.scenarios._montecarlo import _dcc_innovations, _t_marginals

    rng = np.random.default_rng(5)
    K, B, H = 6, 50, 4
    x = rng.standard_normal((200, K)) @ rng.standard_normal((K, K))
    qbar = np.corrcoef(x, rowvar=False)
    qnext = 0.7 * qbar + 0.3 * np.eye(K)
    a, b = 0.04, 0.9
    nu = np.linspace(4.0, 9.0, K)
    n = rng.standard_normal((B, H, K))
    z = np.empty_like(n)
    q = np.broadcast_to(qnext, (B, K, K)).copy()
    for t in range(H):
        d = 1.0 / np.sqrt(np.einsum("bii->bi", q))
        r = q * d[:, :, None] * d[:, None, :]
        zt = _t_marginals(np.einsum("bij,bj->bi", np.linalg.cholesky(r), n[:, t, :]), nu)
        z[:, t, :] = zt
        q = (1 - a - b) * qbar + a * zt[:, :, None] * zt[:, None, :] + b * q
    assert np.array_equal(_dcc_innovations((a, b, qbar, qnext), nu, n), z)
    # a changed recursion is seen: b applied to the new shock instead of the old state
    assert not np.array_equal(_dcc_innovations((a, b, qbar, qnext), nu, n[:, ::-1]), z)
