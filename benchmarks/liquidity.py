"""Liquidity benchmark: the capacity grid and liquidity-adjusted drawdowns of the demo book over 10,000
paths of 20 days, against the 10-second budget of issue #7.

Run:  python benchmarks/liquidity.py [--paths 10000] [--horizon 20] [--nav 2.5e8] [--out FILE]

Inputs (timed apart, not in the budget): the demo batch's book and market at its as-of date, ``--paths``
Student-t Monte Carlo paths of ``--horizon`` days (``scenarios.generate``, ``paths: true``), revalued with
the JAX kernels into position P&L paths ``[S, H, N]``, and the cost model (``liquidity.model_from_market``).
The paths are revalued three times, in turn, both ways: at the as-of date, and aged as the run does for a
family valued at its horizon (``kernels.revalue_path``: every day of the path in one book, the one the
timed steps use).  The aged way is timed in its two parts: building the path book (each day's book at its
date, once per run and path length) and revaluing the paths with it; the ratios of the fastest of the
later calls to the as-of date's are printed, without and with the build.

Timed (the budget): base and stress liquidation schedules; liquidity-adjusted drawdowns of every path
under a stop-loss deleveraging rule with groups; liquidity-adjusted VaR/CVaR; the capacity curve over 20
AUM multiples in the base and stress scopes with LA CVaR and LA drawdown per asset class and sleeve; and
where four limits bind.  Each step's wall and CPU time is printed with the ratio of the total to 10 s.

Baseline measured in the same run: the plain and liquidity-adjusted drawdowns of every path through the
dense numpy twin of the tests (``tests/liquidity/liquidity_helpers.py``: every scenario and position
every day), against one call of the library on the same inputs, with the largest difference between them.

The demo book has no NAV; ``--nav`` (default 250m, the book's gross value about 3.4 times it) is an
illustrative choice that sets the drawdown triggers and the NAV-relative figures.
"""

from __future__ import annotations

from pathlib import Path


import argparse
import json
import os
import platform
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _timed(timings: dict, name: str, fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    timings[name] = {"wall_s": round(time.perf_counter() - w, 4), "cpu_s": round(time.process_time() - c, 4)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--nav", type=float, default=2.5e8)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds (issue #7)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "liquidity.json"))
    args = ap.parse_args(argv)

    from stressgrid import liquidity as lq
    from stressgrid import scenarios
    from stressgrid.grid._batch import load_batch
    from stressgrid.grid import prepare_inputs

    inputs_t: dict = {}
    batch, digest = load_batch(ROOT / "examples" / "demo_batch.yaml")
    spec = scenarios.MonteCarloSpec.model_validate(dict(
        kind="montecarlo", name="mc_paths", model="student_t", estimator="ledoit_wolf",
        window={"end": str(batch.market.as_of), "lookback_days": 750}, n_scenarios=args.paths, horizon_days=args.horizon, paths=True))
    # the demo's families replaced by the one Monte Carlo family, the sections that name them left out
    only = batch.model_copy(update={"scenarios": [spec], "optimise": None, "monitoring": None, "factor_model": None,
                                    "limits": None})
    run_in = _timed(inputs_t, "book_market_scenarios", lambda: prepare_inputs(only, digest))
    scen, market, prepared = run_in.scenarios, run_in.market, run_in.prepared
    # the paths revalued as the run revalues a horizon family's (kernels.revalue_path: the path book built, then
    # every day revalued with it), and at the as-of date as the baseline; three times in turn, the first compiles
    from stressgrid import kernels

    positions, base = run_in.book.positions, np.asarray(market.levels, dtype=float)
    H = scen.paths.shape[1]
    for rep in ("", "_2", "_3"):
        _timed(inputs_t, "revalue_paths_as_of" + rep, lambda: lq.revalue_paths(prepared, market, scen.paths))
        cache = _timed(inputs_t, "build_path_book" + rep,
                       lambda: kernels.path_books(prepared, positions, batch.base_currency, market.as_of, H, base))
        pp = _timed(inputs_t, "revalue_paths_aged" + rep, lambda: lq.revalue_paths(
            prepared, market, scen.paths, positions=positions, base_ccy=batch.base_currency, path_books=cache))
    best = {k: min(inputs_t[k + r]["wall_s"] for r in ("_2", "_3")) for k in ("revalue_paths_as_of", "build_path_book",
                                                                             "revalue_paths_aged")}
    aged_ratio = best["revalue_paths_aged"] / max(best["revalue_paths_as_of"], 1e-9)
    built_ratio = (best["revalue_paths_aged"] + best["build_path_book"]) / max(best["revalue_paths_as_of"], 1e-9)
    model = _timed(inputs_t, "cost_model", lambda: lq.model_from_market(run_in.book, market, prepared, run_in.history,
                                                                         batch.base_currency, nav=args.nav))
    S, H, N = pp.shape
    print(f"inputs: {S} paths x {H} days x {N} positions; " +
          ", ".join(f"{k} {v['wall_s']:.2f} s" for k, v in inputs_t.items()))
    print(f"paths aged (every day in one book) against the book at the as-of date, fastest later calls: "
          f"x{aged_ratio:.2f} the time, x{built_ratio:.2f} with the path book's build "
          f"({best['build_path_book']:.2f} s, once per run and path length)")

    rule = lq.DeleverageRule(drawdown_steps=((0.03, 0.5), (0.06, 0.0)))
    cond = lq.Conditions.from_scenarios(scen)
    grid = np.geomspace(0.25, 20.0, 20)
    limits = [lq.Limit("days_to_liquidate", 5, "stress"), lq.Limit("cost_bps", 50, "stress"),
              lq.Limit("la_cvar_nav", 0.10, "base"), lq.Limit("la_drawdown_nav", 0.10, "stress")]
    t: dict = {}
    stress = model.stress_conditions()
    sched = _timed(t, "liquidation_schedules", lambda: lq.liquidation_table(
        model, {"base": lq.liquidation_schedule(model), "stress": lq.liquidation_schedule(model, 1.0, stress),
                "redemption_25pct_stress": lq.liquidation_schedule(model, 0.25, stress)}))
    dd = _timed(t, "la_drawdown", lambda: lq.liquidity_adjusted_drawdown(model, pp, rule, cond, groups=True))
    risk = _timed(t, "la_var_cvar", lambda: lq.la_risk_table(model, pp[:, -1], scen.family, scen.weights, (0.95, 0.99), cond))
    curve = _timed(t, "capacity_curve_20", lambda: lq.capacity_curve(model, grid, pnl=pp[:, -1], pnl_paths=pp,
                                                                      weights=scen.weights, rule=rule, alpha=0.95))
    bind = _timed(t, "binding_aum", lambda: lq.binding_aum(curve, limits, model=model))
    total_wall = sum(v["wall_s"] for v in t.values())
    total_cpu = sum(v["cpu_s"] for v in t.values())

    # baseline: one pass of the dense twin against one pass of the library, same inputs
    import importlib.util

    spec = importlib.util.spec_from_file_location("liquidity_helpers", ROOT / "tests" / "liquidity" / "liquidity_helpers.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    dense_drawdown = helpers.dense_drawdown

    c = lq.Conditions(cond.spread_mult, cond.adv_mult, lq.path_vol_multiplier(model, pp), None)
    res = model.resolve(c)
    base_t: dict = {}
    lib = _timed(base_t, "library_pass", lambda: lq.liquidity_adjusted_drawdown(model, pp, rule, c))
    z = np.zeros(model.n)
    twin = _timed(base_t, "dense_twin_pass", lambda: (
        dense_drawdown(model, pp, rule, res.spread, res.impact, res.cap_units),
        dense_drawdown(model, pp, rule, z, z, np.full(model.n, np.inf), turnover=False)))
    diff = float(max(np.max(np.abs(lib.la_drawdown - twin[0][0])), np.max(np.abs(lib.drawdown - twin[1][0]))))
    speedup = base_t["dense_twin_pass"]["wall_s"] / max(base_t["library_pass"]["wall_s"], 1e-9)

    for k, v in t.items():
        print(f"{k:>24}: {v['wall_s']:7.3f} s wall, {v['cpu_s']:7.3f} s CPU")
    print(f"{'total':>24}: {total_wall:7.3f} s wall, {total_cpu:7.3f} s CPU; ratio to the {args.budget:g} s budget: "
          f"{total_wall / args.budget:.3f}")
    print(f"baseline, plain and LA drawdowns: library {base_t['library_pass']['wall_s']:.3f} s, dense numpy twin "
          f"{base_t['dense_twin_pass']['wall_s']:.3f} s (x{speedup:.1f}); largest difference {diff:.3g}")
    book = sched[sched["level"] == "book"].set_index("scope")
    r95 = risk[risk["alpha"] == 0.95].iloc[0]
    triggered = float(np.mean(dd.unwind_days > 0))
    print(f"days to liquidate the book: base {book.loc['base', 'days']}, stress {book.loc['stress', 'days']}; "
          f"cost {book.loc['base', 'cost_bps']:.1f} / {book.loc['stress', 'cost_bps']:.1f} bps")
    print(f"95% CVaR {r95['cvar']:,.0f}, LA-CVaR {r95['la_cvar']:,.0f}; paths forced to sell {triggered:.1%}; "
          f"mean drawdown {dd.drawdown.mean():,.0f}, LA {dd.la_drawdown.mean():,.0f}")
    first = bind[bind["first"] & (bind["level"] != "book")]
    for _, row in first.iterrows():
        print(f"  {row['limit']}: {row['level']} {row['group']} {row['status']} at x{row['binding_multiple']:.2f}")

    out = {
        "meta": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "numpy": np.__version__, "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                 "args": {k: v for k, v in vars(args).items() if k != "out"},
                 "rule": {"drawdown_steps": [list(x) for x in rule.drawdown_steps]},
                 "paths": S, "horizon_days": H, "positions": N, "aum_multiples": grid.tolist()},
        "inputs_seconds": inputs_t,
        "aged_paths_time_ratio": round(aged_ratio, 3),
        "aged_paths_time_ratio_with_build": round(built_ratio, 3),
        "timings": t,
        "total_wall_s": round(total_wall, 4),
        "total_cpu_s": round(total_cpu, 4),
        "ratio_to_budget": round(total_wall / args.budget, 4),
        "baseline": {**base_t, "speedup_wall": round(speedup, 2), "max_abs_difference": diff},
        "figures": {
            "book_days": {s: int(book.loc[s, "days"]) for s in book.index},
            "book_cost_bps": {s: round(float(book.loc[s, "cost_bps"]), 3) for s in book.index},
            "cvar_95": float(r95["cvar"]), "la_cvar_95": float(r95["la_cvar"]),
            "share_of_paths_forced_to_sell": triggered,
            "mean_drawdown": float(dd.drawdown.mean()), "mean_la_drawdown": float(dd.la_drawdown.mean()),
            "binding": first[["limit", "level", "group", "status", "binding_multiple"]].to_dict(orient="records"),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2, default=float)
    return out


if __name__ == "__main__":
    main()
