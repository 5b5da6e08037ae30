"""Per-family re-optimisation tables: numbers recomputed independently, contributions add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from portfolio_data import ASSET_CLASS, synthetic_returns

from stressgrid.core import InfeasibleError, var_cvar
from stressgrid.portfolios import (
    HRP,
    SUMMARY_COLUMNS,
    WEIGHT_COLUMNS,
    Constraints,
    MeanCVaR,
    ReoptimisationResult,
    RiskParity,
    reoptimise_families,
    reoptimise_family,
)

N = 24
SLEEVE = (["trend", "carry", "value", "defensive"] * 6)[:N]
GROUPS = {"asset_class": ASSET_CLASS, "sleeve": SLEEVE}
POSITIONS = [f"pos{i}" for i in range(N)]


def cost_fn(trade):
    """5bp of the traded notional plus a square-root impact term (fraction of NAV)."""
    return float(5e-4 * np.abs(trade).sum() + 1e-3 * (np.abs(trade) ** 1.5).sum())


@pytest.fixture(scope="module")
def setup(history_factors):
    R, F = history_factors
    base = R[-500:]
    base_f = F[-500:]
    stress = {
        "crisis": R[np.argsort(R.sum(axis=1))[:60]] * 1.5,         # the 60 worst days, amplified
        "mc_t": synthetic_returns(3000, N, seed=9) * 1.3,
        "hist": R[:-500],
    }
    fret = {"crisis": F[np.argsort(R.sum(axis=1))[:60]] * 1.5, "hist": F[:-500]}
    B = np.linalg.lstsq(np.column_stack([np.ones(len(R)), F]), R, rcond=None)[0][1:].T
    w0 = np.full(N, 1 / N)
    return dict(stress=stress, base=base, base_f=base_f, fret=fret, B=B, w0=w0)


def run(setup, methods=None, **kw):
    return reoptimise_families(
        setup["stress"], setup["w0"], methods=methods, alpha=0.95, base_returns=setup["base"],
        positions=POSITIONS, groups=GROUPS, loadings=setup["B"], factor_returns=setup["fret"],
        base_factor_returns=setup["base_f"], factor_names=["spx", "wti", "eurusd", "ust10y"], cost_fn=cost_fn, **kw,
    )


def test_tables_and_numbers(setup):
    methods = {
        "min_cvar": MeanCVaR(alpha=0.95, constraints=Constraints(upper=0.2, max_turnover=1.0), fallback="current"),
        "erc": RiskParity("vol"),
        "hrp": HRP(),
    }
    res = run(setup, methods)
    assert list(res.summary.columns) == SUMMARY_COLUMNS
    assert list(res.weights.columns) == WEIGHT_COLUMNS
    assert len(res.summary) == 3 * 3
    assert len(res.weights) == 3 * 3 * N
    w0 = setup["w0"]
    for _, row in res.summary.iterrows():
        R = setup["stress"][row.family]
        wt = res.weights[(res.weights.family == row.family) & (res.weights.method == row.method)]
        w = wt.weight_new.to_numpy()
        np.testing.assert_allclose(wt.trade.to_numpy(), w - w0, atol=1e-15)
        np.testing.assert_allclose(wt.weight_current.to_numpy(), w0)
        assert list(wt.position) == POSITIONS
        v0, c0 = var_cvar(R @ w0, 0.95)
        v1, c1 = var_cvar(R @ w, 0.95)
        assert (row.cvar_before, row.var_before) == pytest.approx((c0, v0), rel=1e-12)
        assert (row.cvar_after, row.var_after) == pytest.approx((c1, v1), rel=1e-12)
        bv0, bc0 = var_cvar(setup["base"] @ w0, 0.95)
        bv1, bc1 = var_cvar(setup["base"] @ w, 0.95)
        assert (row.base_cvar_before, row.base_cvar_after) == pytest.approx((bc0, bc1), rel=1e-12)
        assert (row.base_var_before, row.base_var_after) == pytest.approx((bv0, bv1), rel=1e-12)
        assert row.turnover == pytest.approx(np.abs(w - w0).sum(), rel=1e-12)
        assert row.cost == pytest.approx(cost_fn(w - w0), rel=1e-12)
        assert row.n_scenarios == len(R)
        if row.method == "min_cvar":
            assert row.status == "optimal"
            assert row.cvar_after <= row.cvar_before + 1e-12   # the equal-weight book is feasible
            assert np.all(w <= 0.2 + 1e-9) and row.turnover <= 1.0 + 1e-9


def test_contributions_add_up_at_every_level(setup):
    res = run(setup)
    c = res.contributions
    assert set(c.level) == {"position", "asset_class", "sleeve", "factor"}
    for (fam, meth, sset, state, level), g in c.groupby(["family", "method", "scenario_set", "state", "level"]):
        R = setup["stress"][fam] if sset == "stressed" else setup["base"]
        row = res.summary[(res.summary.family == fam) & (res.summary.method == meth)].iloc[0]
        key = ("" if sset == "stressed" else "base_") + "cvar_" + ("before" if state == "before" else "after")
        assert g.cvar_contribution.sum() == pytest.approx(row[key], rel=1e-10), (fam, sset, state, level)
        if level == "factor":
            assert set(g.group) == {"spx", "wti", "eurusd", "ust10y", "residual"}
    # no factor returns for mc_t: no factor level there
    assert "factor" not in set(c[(c.family == "mc_t") & (c.scenario_set == "stressed")].level)
    # asset-class contributions are sums of the position contributions
    sub = c[(c.family == "crisis") & (c.state == "after") & (c.scenario_set == "stressed")]
    pos = sub[sub.level == "position"].cvar_contribution.to_numpy()
    ac = sub[sub.level == "asset_class"].set_index("group").cvar_contribution
    lab = np.array(ASSET_CLASS)
    for name in ("equity", "commodity", "fx"):
        assert ac[name] == pytest.approx(pos[lab == name].sum(), rel=1e-12)


def test_warm_started_families_equal_cold_single_family_runs(setup):
    shared = run(setup)
    parts = [
        reoptimise_family(name, R, setup["w0"], alpha=0.95, cost_fn=cost_fn, positions=POSITIONS)
        for name, R in setup["stress"].items()
    ]
    cold = ReoptimisationResult.concat(parts)
    np.testing.assert_allclose(shared.summary.cvar_after, cold.summary.cvar_after, rtol=1e-9)
    np.testing.assert_allclose(shared.summary.cost, cold.summary.cost, rtol=1e-6, atol=1e-12)


def test_infeasible_family_falls_back_or_raises(setup):
    cs = Constraints(max_position=0.02)   # 24 x 2% cannot be fully invested
    res = run(setup, {"capped": MeanCVaR(constraints=cs)}, fallback="current")
    assert set(res.summary.status) == {"fallback"}
    assert res.summary.message.str.contains("position_caps").all()
    assert (res.summary.turnover == 0).all() and (res.summary.cost == cost_fn(np.zeros(N))).all()
    np.testing.assert_allclose(res.summary.cvar_before, res.summary.cvar_after)
    with pytest.raises(InfeasibleError, match="position_caps"):
        run(setup, {"capped": MeanCVaR(constraints=cs)})


def test_without_cost_model_or_base_set_the_columns_are_nan():
    R = synthetic_returns(500, 5)
    res = reoptimise_family("mc", R, np.full(5, 0.2))
    row = res.summary.iloc[0]
    assert np.isnan(row.cost) and np.isnan(row.base_cvar_before) and row.method == "min_cvar"
    assert isinstance(res.weights, pd.DataFrame) and len(res.weights) == 5
    empty = ReoptimisationResult.concat([])
    assert list(empty.summary.columns) == SUMMARY_COLUMNS
