"""Distributed mean-CVaR: the optimum of the plain RU LP (cvxpy) and of the in-memory solver, whatever the
chunking; exact VaR and tail sums against core.measures; ties; Ray actors against the serial path."""

from __future__ import annotations

import functools

import cvxpy as cp
import numpy as np
import pytest

import stressgrid.portfolios._cvar_distributed as dist
from stressgrid.core import ConfigError, DataError, InfeasibleError, var_cvar
from stressgrid.core.measures import tail_weights
from stressgrid.portfolios import (
    Constraints,
    CutPlaneCVaR,
    DistributedCVaR,
    MeanCVaR,
    ScenarioChunks,
    compile_constraints,
)

from portfolio_data import synthetic_returns

ALPHA = 0.95
TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500}


def split_rows(S: int, k: int, seed: int) -> list[np.ndarray]:
    """``k`` chunks of unequal sizes (at least one row each), in scenario order."""
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, S), k - 1, replace=False))
    return np.split(np.arange(S), cuts)


def chunked(R, p, k, seed=0):
    return [R[i] if p is None else (R[i], p[i]) for i in split_rows(len(R), k, seed)]


def probabilities(S: int, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).random(S) + 0.1
    return p / p.sum()


def ru_lp(R, p, alpha, objective="min_cvar", budget=None, lower=0.0, upper=None, max_gross=None):
    """The textbook Rockafellar-Uryasev LP (J. Risk 2000, eq. 17) in cvxpy, solved by Clarabel with tight
    tolerances (an interior-point method: no HiGHS thread scheduler shared with the solver under test)."""
    S, N = R.shape
    p = np.full(S, 1.0 / S) if p is None else p
    w, z, u = cp.Variable(N), cp.Variable(), cp.Variable(S, nonneg=True)
    cvar = z + (p @ u) / (1.0 - alpha)
    cons = [u >= -R @ w - z, cp.sum(w) == 1, w >= lower]
    if upper is not None:
        cons.append(w <= upper)
    if max_gross is not None:
        cons.append(cp.norm1(w) <= max_gross)
    if objective == "min_cvar":
        prob = cp.Problem(cp.Minimize(cvar), cons)
    else:
        prob = cp.Problem(cp.Maximize((p @ R) @ w), cons + [cvar <= budget])
    prob.solve(solver="CLARABEL", **TIGHT)
    assert prob.status == "optimal"
    return float(prob.value), np.asarray(w.value)


@pytest.fixture(scope="module")
def problem():
    R = synthetic_returns(2000, 10, seed=11)
    return R, probabilities(2000, 11)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_min_cvar_equals_plain_lp_and_in_memory_whatever_the_chunks(problem, k, weighted):
    R, p = problem
    p = p if weighted else None
    system = compile_constraints(None, 10)
    ref_value, _ = ru_lp(R, p, ALPHA)
    mem = CutPlaneCVaR(system, ALPHA).solve(R, p)
    sol = DistributedCVaR(system, ALPHA).solve(chunked(R, p, k, seed=k))
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(ref_value, rel=1e-6)
    assert sol.objective == pytest.approx(mem.objective, rel=1e-9)
    np.testing.assert_allclose(sol.weights, mem.weights, atol=1e-7)
    # the reported VaR and CVaR are those of the weights, and the certificate holds
    var, cvar = var_cvar(R @ sol.weights, ALPHA, p)
    assert sol.cvar == pytest.approx(cvar, rel=1e-12)
    assert sol.var == pytest.approx(var, rel=1e-12)
    assert sol.bound <= sol.objective * (1 + 1e-9)
    assert sol.expected_return == pytest.approx(float(((p if weighted else np.full(2000, 1 / 2000)) @ R) @ sol.weights),
                                                rel=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_max_return_under_a_cvar_budget_equals_plain_lp(problem, weighted):
    R, p = problem
    p = p if weighted else None
    budget = 1.3 * ru_lp(R, p, ALPHA)[0]
    ref_value, _ = ru_lp(R, p, ALPHA, objective="max_return", budget=budget)
    system = compile_constraints(None, 10)
    sol = DistributedCVaR(system, ALPHA).solve(chunked(R, p, 4, seed=2), objective="max_return", cvar_budget=budget)
    mem = CutPlaneCVaR(system, ALPHA).solve(R, p, objective="max_return", cvar_budget=budget)
    assert sol.objective == pytest.approx(ref_value, rel=1e-6)
    assert sol.objective == pytest.approx(mem.objective, rel=1e-9)
    assert sol.cvar <= budget * (1 + 1e-9)
    assert sol.cvar == pytest.approx(var_cvar(R @ sol.weights, ALPHA, p)[1], rel=1e-12)


def test_long_short_constraints_equal_plain_lp_and_mean_cvar(problem):
    R, _ = problem
    cs = Constraints(lower=-0.5, upper=1.0, max_gross=2.0)
    ref_value, _ = ru_lp(R, None, 0.9, lower=-0.5, upper=1.0, max_gross=2.0)
    est = MeanCVaR(alpha=0.9, constraints=cs).fit(R)
    sol = DistributedCVaR.from_constraints(cs, 10, 0.9).solve(chunked(R, None, 5, seed=3))
    assert sol.objective == pytest.approx(ref_value, rel=1e-6)
    assert sol.cvar == pytest.approx(est.cvar_, rel=1e-9)
    assert np.abs(sol.weights).sum() <= 2.0 + 1e-9 and sol.weights.min() >= -0.5 - 1e-9


def tied_returns(S: int, N: int, seed: int) -> np.ndarray:
    """Returns on a coarse binary grid (multiples of 1/256, so that losses at weights in multiples of 1/64
    are exact in any order of summation) with duplicated rows: many losses tie, at VaR too."""
    rng = np.random.default_rng(seed)
    base = np.round(synthetic_returns(S // 4 + 1, N, seed=seed) * 256) / 256
    R = np.vstack([base, base, base, base])[:S]
    return R[rng.permutation(S)]


@pytest.mark.parametrize("weighted", [False, True])
def test_tail_at_fixed_weights_equals_core_measures_with_ties(weighted, monkeypatch):
    """VaR, CVaR and ``sum t_s r_s`` at given weights equal core.measures.tail_weights on the whole set,
    for any chunking, with ties at VaR, and with brackets narrowed over several rounds."""
    S, N = 3001, 8
    R = tied_returns(S, N, seed=5)
    p = probabilities(S, 5) if weighted else None
    rng = np.random.default_rng(0)
    solver = DistributedCVaR(compile_constraints(None, N), 0.9)
    for w in (np.full(N, 1.0 / N), np.eye(N)[2], rng.multinomial(64, np.full(N, 1.0 / N)) / 64):
        var_ref, t = tail_weights(R @ w, 0.9, p)
        cvar_ref = float(t @ -(R @ w)) / 0.1
        assert np.sum(np.isclose(-(R @ w), var_ref, rtol=0, atol=1e-12)) > 1   # VaR is tied
        for k in (1, 2, 7):
            for small in (False, True):
                if small:  # few pivots and small full fetches: several bracketing rounds
                    monkeypatch.setattr(dist, "_PIVOTS", 3)
                    monkeypatch.setattr(dist, "_FULL", 5)
                with ScenarioChunks(chunked(R, p, k, seed=k)) as chunks:
                    var, cvar, tr = solver._tail(chunks, w)
                monkeypatch.undo()
                assert var == var_ref
                assert cvar == pytest.approx(cvar_ref, rel=1e-12, abs=1e-15)
                np.testing.assert_allclose(tr, t @ R, rtol=1e-10, atol=1e-15)


def test_ties_give_the_same_optimum_for_every_chunking():
    R = tied_returns(2400, 8, seed=7)
    system = compile_constraints(None, 8)
    ref_value, _ = ru_lp(R, None, ALPHA)
    sols = [DistributedCVaR(system, ALPHA).solve(chunked(R, None, k, seed=k)) for k in (1, 2, 5, 9)]
    for s in sols:
        assert s.objective == pytest.approx(ref_value, rel=1e-6)
        assert s.objective == pytest.approx(sols[0].objective, rel=1e-10)
        np.testing.assert_allclose(s.weights, sols[0].weights, atol=1e-8)


def test_chunks_smaller_than_the_tail_and_one_chunk_holding_it():
    """Chunks of a few rows each, and one chunk that holds every large loss (the other chunks' sorted
    tails do not reach VaR)."""
    R = synthetic_returns(1200, 5, seed=9)
    order = np.argsort(R.sum(axis=1))
    R = R[order]  # worst rows (for equal weights) first, in one chunk
    system = compile_constraints(None, 5)
    ref = CutPlaneCVaR(system, ALPHA).solve(R, None)
    tiny = DistributedCVaR(system, ALPHA).solve([R[i:i + 7] for i in range(0, 1200, 7)])
    lopsided = DistributedCVaR(system, ALPHA).solve([R[:100], R[100:1100], R[1100:]])
    for s in (tiny, lopsided):
        assert s.objective == pytest.approx(ref.objective, rel=1e-9)
        np.testing.assert_allclose(s.weights, ref.weights, atol=1e-7)


def test_pivot_path_at_tens_of_thousands_of_scenarios():
    """Sorted tails larger than a full fetch (pivots, then a narrowed bracket) and zero-probability rows."""
    S, N = 30_000, 12
    R = synthetic_returns(S, N, seed=13)
    p = probabilities(S, 13)
    p[::7] = 0.0
    p /= p.sum()
    system = compile_constraints(None, N)
    ref = CutPlaneCVaR(system, 0.7).solve(R, p)
    sol = DistributedCVaR(system, 0.7).solve(chunked(R, p, 2, seed=1))
    assert sol.objective == pytest.approx(ref.objective, rel=1e-9)
    assert sol.cvar == pytest.approx(var_cvar(R @ sol.weights, 0.7, p)[1], rel=1e-12)


def test_callable_sources_run_where_the_chunk_is_held(tmp_path, problem):
    R, _ = problem
    paths = []
    for j, rows in enumerate(split_rows(len(R), 3, seed=4)):
        paths.append(tmp_path / f"chunk{j}.npy")
        np.save(paths[-1], R[rows])
    system = compile_constraints(None, 10)
    sol = DistributedCVaR(system, ALPHA).solve([functools.partial(np.load, f) for f in paths])
    assert sol.objective == pytest.approx(CutPlaneCVaR(system, ALPHA).solve(R, None).objective, rel=1e-9)


def test_bad_chunks_and_settings_raise_clear_errors(problem):
    R, p = problem
    system = compile_constraints(None, 10)
    solver = DistributedCVaR(system, ALPHA)
    bad = R[:500].copy()
    bad[17, 3] = np.nan
    with pytest.raises(DataError, match=r"chunks\[1\]: returns\[17, 3\] must be finite"):
        solver.solve([R[:100], bad])
    with pytest.raises(ConfigError, match=r"chunks\[1\]: expected 10 columns"):
        solver.solve([R[:100], R[100:200, :9]])
    with pytest.raises(ConfigError, match="every chunk or for none"):
        solver.solve([(R[:100], p[:100]), R[100:]])
    with pytest.raises(ConfigError, match="sum to 1"):
        solver.solve([(R[:100], p[:100]), (R[100:200], p[100:200])])
    neg = p[:100].copy()
    neg[2] = -0.01
    with pytest.raises(ConfigError, match=r"chunks\[0\]: probabilities\[2\] must be finite and >= 0 \(got -0.01\)"):
        solver.solve([(R[:100], neg), (R[100:], p[100:])])
    with pytest.raises(ConfigError, match="expected 9 columns"):
        DistributedCVaR(compile_constraints(None, 9), ALPHA).solve([R])
    with pytest.raises(ConfigError, match="cvar_budget"):
        solver.solve([R], objective="max_return")
    with pytest.raises(ConfigError, match="alpha"):
        DistributedCVaR(system, 1.5)
    from stressgrid.grid import actor_pool

    with pytest.raises(ConfigError, match="num_cpus"):
        ScenarioChunks([R], pool=actor_pool(num_cpus=0))
    with pytest.raises(ConfigError, match="at least one chunk"):
        ScenarioChunks([])


def test_infeasible_names_the_binding_family(problem):
    R, _ = problem
    cs = Constraints(max_position=np.full(10, 0.05))  # 10 x 5% cannot make a fully invested book
    with pytest.raises(InfeasibleError, match="position_caps"):
        DistributedCVaR.from_constraints(cs, 10, ALPHA).solve([R[:1000], R[1000:]])
    low = CutPlaneCVaR(compile_constraints(None, 10), ALPHA).solve(R, None).cvar
    with pytest.raises(InfeasibleError, match="cvar_budget"):
        DistributedCVaR.from_constraints(None, 10, ALPHA).solve([R[:1000], R[1000:]], objective="max_return",
                                                                cvar_budget=0.5 * low)


@pytest.mark.ray
def test_ray_actors_equal_the_serial_path_and_are_killed(ray_session, tmp_path, problem):
    ray = ray_session
    R, p = problem
    system = compile_constraints(None, 10)
    serial_min = DistributedCVaR(system, ALPHA).solve(chunked(R, p, 3, seed=6))
    budget = 1.2 * serial_min.cvar
    serial_max = DistributedCVaR(system, ALPHA).solve(chunked(R, p, 3, seed=6), objective="max_return",
                                                      cvar_budget=budget)
    rows = split_rows(len(R), 3, seed=6)
    last, p_last = str(tmp_path / "last.npy"), p[rows[2]]
    np.save(last, R[rows[2]])
    # arrays put into two actors, and one actor that reads its chunk itself (a lambda travels by value)
    sources = [(R[rows[0]], p[rows[0]]), (R[rows[1]], p[rows[1]]), lambda: (np.load(last), p_last)]
    from stressgrid.grid import actor_pool

    with ScenarioChunks(sources, pool=actor_pool()) as chunks:
        actors = list(chunks.pool.actors)
        assert len(actors) == 3 and chunks.n_scenarios == 2000
        a = DistributedCVaR(system, ALPHA).solve(chunks)
        b = DistributedCVaR(system, ALPHA).solve(chunks, objective="max_return", cvar_budget=budget)
    assert a.objective == pytest.approx(serial_min.objective, rel=1e-12)
    np.testing.assert_allclose(a.weights, serial_min.weights, atol=1e-10)
    assert b.objective == pytest.approx(serial_max.objective, rel=1e-12)
    assert a.objective == pytest.approx(ru_lp(R, p, ALPHA)[0], rel=1e-6)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actors[0].load.remote(), timeout=60)
