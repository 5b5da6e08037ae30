"""Mean-CVaR benchmark: our exact solver against the plain cvxpy LP, skfolio and riskfolio-lib.

Run:  python benchmarks/optimise.py [--quick | --full] [--out FILE]

* Single solves (minimum CVaR at 95%, fully invested, long-only) on a seeded Student-t factor model at
  several sizes (assets x scenarios): our :class:`portfolios.MeanCVaR` (cutting planes + scenario
  aggregation on HiGHS), the plain Rockafellar-Uryasev LP in cvxpy (default solver), skfolio's
  ``MeanRisk`` and riskfolio-lib's ``Portfolio.optimization`` (both build that same LP in cvxpy).  Every
  optimum is recomputed from the returned weights by ``core.measures.var_cvar``; the table gives each
  peer's relative difference to ours and its time over ours.
* Two sweeps of 50 re-optimisations of the same problem on changed scenarios - new Monte Carlo draws,
  and stressed versions of one draw set (volatility x1 to x2, a drift tilt) - with one ``MeanCVaR``
  object re-used (compiled once, started from the previous solution), against 50 independent solves of
  the plain cvxpy LP and against 50 fresh ``MeanCVaR`` objects.

Sizes: default 50x1,000 .. 200x10,000 (about 5 minutes on 2 cores); ``--full`` adds 200x20,000 and
200x100,000 (about 12 minutes: each peer takes 2-3 minutes and over 4 GB at the largest size);
``--quick`` is a smoke run of about a minute.  Numbers are printed and
written as JSON to ``--out`` (default ``benchmarks/results/optimise.json``).
"""

from __future__ import annotations

from pathlib import Path


import argparse
import gc
import json
import os
import platform
import time
import warnings

import cvxpy as cp
import numpy as np
import pandas as pd

from stressgrid.core.measures import var_cvar
from stressgrid.portfolios import MeanCVaR

ALPHA = 0.95
ROOT = Path(__file__).resolve().parents[1]


def scenarios(S: int, N: int, seed: int) -> np.ndarray:
    """Returns ``[S, N]``: 5 Student-t(4) factors, Student-t(5) idiosyncratic noise, small drifts."""
    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 0.5, (N, 5))
    mu = rng.normal(0.0003, 0.0002, N)
    f = rng.standard_t(4, (S, 5)) * 0.01
    return f @ B.T + rng.standard_t(5, (S, N)) * 0.01 + mu


def plain_lp(R: np.ndarray) -> np.ndarray:
    """The textbook RU LP in cvxpy, built from scratch (default solver)."""
    S, N = R.shape
    w = cp.Variable(N)
    z = cp.Variable()
    u = cp.Variable(S)
    prob = cp.Problem(cp.Minimize(z + cp.sum(u) / ((1 - ALPHA) * S)),
                      [u >= -R @ w - z, u >= 0, w >= 0, cp.sum(w) == 1])
    prob.solve()
    return np.asarray(w.value)


def ours(R: np.ndarray) -> np.ndarray:
    return MeanCVaR(alpha=ALPHA).fit(R).weights_


def skfolio_(R: np.ndarray) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk

    return MeanRisk(risk_measure=RiskMeasure.CVAR, cvar_beta=ALPHA).fit(R).weights_


def riskfolio_(R: np.ndarray) -> np.ndarray:
    import riskfolio as rp

    port = rp.Portfolio(returns=pd.DataFrame(R, columns=[f"a{i}" for i in range(R.shape[1])]))
    port.assets_stats(method_mu="hist", method_cov="hist")
    port.alpha = 1 - ALPHA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = port.optimization(model="Classic", rm="CVaR", obj="MinRisk", hist=True)
    return w.to_numpy().ravel()


SOLVERS = {"ours": ours, "cvxpy_lp": plain_lp, "skfolio": skfolio_, "riskfolio": riskfolio_}


def timed(fn, R, repeats: int) -> tuple[float, np.ndarray]:
    best, w = np.inf, None
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        w = fn(R)
        best = min(best, time.perf_counter() - t)
    return best, w


def bench_single(sizes, skip_plain_above: float) -> list[dict]:
    rows = []
    for N, S in sizes:
        R = scenarios(S, N, seed=S + N)
        repeats = 3 if S * N <= 2_000_000 else 1
        row: dict = {"assets": N, "scenarios": S}
        ref = None
        for name, fn in SOLVERS.items():
            if name == "cvxpy_lp" and S * N > skip_plain_above:
                continue  # the same LP as skfolio's; not timed twice at the largest size
            t, w = timed(fn, R, repeats)
            cvar = var_cvar(R @ w, ALPHA)[1]
            row[f"{name}_s"] = t
            row[f"{name}_cvar"] = cvar
            if name == "ours":
                ref = cvar
            else:
                row[f"{name}_rel_diff"] = (cvar - ref) / abs(ref)
                row[f"{name}_ratio"] = t / row["ours_s"]
            print(f"  {N:4d} x {S:7d}  {name:10s} {t:9.3f} s  CVaR {cvar:.10g}", flush=True)
        rows.append(row)
    return rows


def sweep_sets(N: int, S: int, n: int, kind: str) -> list[np.ndarray]:
    """``n`` scenario sets of one problem: new Monte Carlo draws, or stressed versions of one draw set
    (volatility x1 to x2 and a drift tilt per set; the scenario rows correspond)."""
    if kind == "new_draws":
        return [scenarios(S, N, seed=1000 + k) for k in range(n)]
    base = scenarios(S, N, seed=999)
    rng = np.random.default_rng(7)
    return [base * m + rng.normal(0.0, 5e-4, N) for m in np.linspace(1.0, 2.0, n)]


def bench_sweep(N: int, S: int, n: int, kind: str) -> dict:
    sets = sweep_sets(N, S, n, kind)
    out: dict = {"kind": kind, "assets": N, "scenarios": S, "solves": n}
    # ours, one object: compiled once, started from the previous solution
    est = MeanCVaR(alpha=ALPHA)
    t = time.perf_counter()
    warm = [est.fit(R).cvar_ for R in sets]
    out["ours_reused_s"] = time.perf_counter() - t
    # ours, a fresh object per solve
    t = time.perf_counter()
    cold = [MeanCVaR(alpha=ALPHA).fit(R).cvar_ for R in sets]
    out["ours_fresh_s"] = time.perf_counter() - t
    # plain cvxpy LP, built and solved n times
    t = time.perf_counter()
    plain = [var_cvar(R @ plain_lp(R), ALPHA)[1] for R in sets]
    out["cvxpy_lp_independent_s"] = time.perf_counter() - t
    out["max_rel_diff_vs_cvxpy"] = float(np.max(np.abs((np.array(warm) - plain) / np.array(plain))))
    out["max_rel_diff_reused_vs_fresh"] = float(np.max(np.abs((np.array(warm) - cold) / np.array(cold))))
    out["ratio_vs_cvxpy"] = out["cvxpy_lp_independent_s"] / out["ours_reused_s"]
    out["ratio_vs_fresh"] = out["ours_fresh_s"] / out["ours_reused_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    mode.add_argument("--full", action="store_true", help="add 200 x 20,000 and 200 x 100,000 (the peers take minutes each)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "optimise.json"))
    args = ap.parse_args()
    if args.quick:
        sizes = [(50, 1_000), (50, 5_000), (200, 2_000)]
        sweep = (50, 2_000, 50)
    else:
        sizes = [(50, 1_000), (50, 10_000), (200, 1_000), (200, 10_000)]
        if args.full:
            sizes += [(200, 20_000), (200, 100_000)]
        sweep = (50, 10_000, 50)
    mode_name = "quick" if args.quick else ("full" if args.full else "default")
    print(f"mean-CVaR benchmark ({mode_name}): minimum CVaR at {ALPHA:.0%}, long-only, fully invested")
    t0 = time.perf_counter()
    single = bench_single(sizes, skip_plain_above=5e6)
    print(f"sweeps: {sweep[2]} re-optimisations at {sweep[0]} x {sweep[1]}", flush=True)
    sweeps = [bench_sweep(*sweep, kind=k) for k in ("new_draws", "stressed_draws")]
    import riskfolio
    import skfolio

    out = {
        "mode": mode_name,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {"cvxpy": cp.__version__, "skfolio": skfolio.__version__,
                     "riskfolio": getattr(riskfolio, "__version__", "?"), "numpy": np.__version__},
        "alpha": ALPHA,
        "single": single,
        "sweeps": sweeps,
        "total_s": time.perf_counter() - t0,
    }
    print()
    print(f"{'assets':>6} {'scen.':>8} {'ours s':>8} | {'cvxpy s':>8} {'x':>6} | {'skfolio s':>9} {'x':>6} {'rel.diff':>9} |"
          f" {'riskfolio s':>11} {'x':>6} {'rel.diff':>9}")
    for r in single:
        cv = f"{r['cvxpy_lp_s']:8.2f} {r['cvxpy_lp_ratio']:6.1f}" if "cvxpy_lp_s" in r else f"{'-':>8} {'-':>6}"
        print(f"{r['assets']:6d} {r['scenarios']:8d} {r['ours_s']:8.3f} | {cv} | {r['skfolio_s']:9.2f} "
              f"{r['skfolio_ratio']:6.1f} {r['skfolio_rel_diff']:9.1e} | {r['riskfolio_s']:11.2f} "
              f"{r['riskfolio_ratio']:6.1f} {r['riskfolio_rel_diff']:9.1e}")
    for sw in sweeps:
        print(f"sweep ({sw['kind']}) of {sw['solves']} at {sw['assets']} x {sw['scenarios']}: ours re-used "
              f"{sw['ours_reused_s']:.2f} s, ours fresh {sw['ours_fresh_s']:.2f} s, plain cvxpy "
              f"{sw['cvxpy_lp_independent_s']:.2f} s; x{sw['ratio_vs_cvxpy']:.1f} vs cvxpy, "
              f"x{sw['ratio_vs_fresh']:.2f} vs fresh; max rel. diff {sw['max_rel_diff_vs_cvxpy']:.1e}")
    print(f"total {out['total_s']:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
