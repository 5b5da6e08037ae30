"""Mean-CVaR benchmark: our exact solver against the plain cvxpy LP, skfolio and riskfolio-lib.

Run:  python benchmarks/optimise.py [--quick | --full | --distributed [--no-peers] | --large] [--out FILE]

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

* ``--distributed``: one problem at 200 x 100,000 solved in memory, by :class:`portfolios.DistributedCVaR`
  over chunks held in this process one after the other and over Ray actors (one per chunk; the time to
  start them and load their chunks is given apart), and by skfolio and riskfolio-lib (``--no-peers``
  leaves them out); ratios against the in-memory and the distributed solves, and every optimum's
  relative difference to the in-memory one.
* ``--large``: minimum CVaR over 10,000,000 scenarios x 50 assets that the Ray actors generate from
  seeds (the model of :func:`scenarios`, drawn in blocks of 250,000 rows from one root seed, so the set
  does not depend on the chunking) and that never pass through this process: wall time (actors started
  and chunks generated, then the solve), this process's peak resident memory and each actor's.
  ``--scenarios`` and ``--chunks`` change the size and the number of actors.

Sizes: default 50x1,000 .. 200x10,000 (about 5 minutes on 2 cores); ``--full`` adds 200x20,000 and
200x100,000 (about 12 minutes: each peer takes 2-3 minutes and over 4 GB at the largest size);
``--quick`` is a smoke run of about a minute; ``--distributed`` takes about 9 minutes with the peers
(1.5 without), ``--large`` about 2.5 minutes and 5 GB over two actors.  Numbers are printed and written as JSON to
``--out`` (default ``benchmarks/results/optimise.json``, ``optimise_distributed.json``,
``optimise_large.json``).

Ray actors need the generating function by value: run this file as a script (``python
benchmarks/optimise.py``), not imported.
"""

from __future__ import annotations

from pathlib import Path


import argparse
import functools
import gc
import json
import os
import platform
import resource
import time
import warnings

import cvxpy as cp
import numpy as np
import pandas as pd

from stressgrid.core.measures import var_cvar
from stressgrid.portfolios import DistributedCVaR, MeanCVaR, ScenarioChunks, compile_constraints

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


def _peers_versions() -> dict:
    import riskfolio
    import skfolio

    return {"skfolio": skfolio.__version__, "riskfolio": getattr(riskfolio, "__version__", "?")}


def _header(mode: str) -> dict:
    return {"mode": mode, "alpha": ALPHA, "load_average": os.getloadavg(),
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
            "versions": {"cvxpy": cp.__version__, "numpy": np.__version__}}


def _rss_gb(nbytes: float | None) -> float:
    return float("nan") if nbytes is None else nbytes / 2**30


def bench_distributed(N: int, S: int, chunks: int, peers: bool) -> dict:
    """One problem solved in memory, over chunks in this process, over Ray actors, and by the peers."""
    from stressgrid.cluster import connect
    from stressgrid.grid import actor_pool

    R = scenarios(S, N, seed=S + N)
    system = compile_constraints(None, N)
    out: dict = {"assets": N, "scenarios": S, "chunks": chunks}
    t, w = timed(ours, R, 3)
    ref = var_cvar(R @ w, ALPHA)[1]
    out.update(ours_s=t, ours_cvar=ref)
    print(f"  {N} x {S}  in memory      {t:8.3f} s  CVaR {ref:.10g}", flush=True)
    parts = np.array_split(R, chunks)

    def serial(_):
        return DistributedCVaR(system, ALPHA).solve(parts).weights

    t, w = timed(serial, R, 3)
    cv = var_cvar(R @ w, ALPHA)[1]
    out.update(serial_s=t, serial_cvar=cv, serial_rel_diff=(cv - ref) / abs(ref))
    print(f"  {N} x {S}  chunks, serial {t:8.3f} s  CVaR {cv:.10g}", flush=True)
    with connect(num_cpus=chunks):
        t0 = time.perf_counter()
        with ScenarioChunks(parts, pool=actor_pool()) as held:
            out["ray_open_s"] = time.perf_counter() - t0
            t, w = timed(lambda _: DistributedCVaR(system, ALPHA).solve(held).weights, R, 3)
            out["ray_actor_peak_rss_gb"] = [_rss_gb(b) for b in held.peak_rss()]
    cv = var_cvar(R @ w, ALPHA)[1]
    out.update(ray_s=t, ray_cvar=cv, ray_rel_diff=(cv - ref) / abs(ref))
    print(f"  {N} x {S}  Ray actors     {t:8.3f} s  CVaR {cv:.10g}  (actors started and loaded in "
          f"{out['ray_open_s']:.1f} s)", flush=True)
    if peers:
        for name in ("skfolio", "riskfolio"):
            t, w = timed(SOLVERS[name], R, 1)
            cv = var_cvar(R @ w, ALPHA)[1]
            out.update({f"{name}_s": t, f"{name}_cvar": cv, f"{name}_rel_diff": (cv - ref) / abs(ref),
                        f"{name}_ratio_vs_ours": t / out["ours_s"], f"{name}_ratio_vs_ray": t / out["ray_s"],
                        f"{name}_ratio_vs_serial": t / out["serial_s"]})
            print(f"  {N} x {S}  {name:13s} {t:8.3f} s  CVaR {cv:.10g}", flush=True)
    out["serial_over_ours"] = out["serial_s"] / out["ours_s"]
    out["ray_over_ours"] = out["ray_s"] / out["ours_s"]
    return out


def student_t_chunk(root: int, N: int, first: int, stop: int, block: int) -> np.ndarray:
    """Rows ``first * block .. stop * block`` of the model of :func:`scenarios` (loadings and drifts from
    ``root``), block ``b`` drawn from the ``b``-th child of ``SeedSequence(root)``: the same rows
    whatever the chunking.  Runs in an actor; the rows never pass through the driver."""
    model = np.random.default_rng(root)
    B = model.normal(0.0, 0.5, (N, 5))
    mu = model.normal(0.0003, 0.0002, N)
    seeds = np.random.SeedSequence(root).spawn(stop)[first:]
    out = np.empty(((stop - first) * block, N))
    for j, seq in enumerate(seeds):
        rng = np.random.default_rng(seq)
        rows = out[j * block:(j + 1) * block]
        np.matmul(rng.standard_t(4, (block, 5)) * 0.01, B.T, out=rows)
        rows += rng.standard_t(5, (block, N)) * 0.01
        rows += mu
    return out


def bench_large(N: int, S: int, chunks: int, block: int = 250_000) -> dict:
    """Minimum CVaR over ``S x N`` scenarios generated inside ``chunks`` Ray actors."""
    from stressgrid.cluster import connect
    from stressgrid.grid import actor_pool

    n_blocks = -(-S // block)
    S = n_blocks * block
    edges = np.linspace(0, n_blocks, chunks + 1).round().astype(int)
    sources = [functools.partial(student_t_chunk, 20_000_000 + N, N, int(a), int(b), block)
               for a, b in zip(edges[:-1], edges[1:])]
    system = compile_constraints(None, N)
    out: dict = {"assets": N, "scenarios": S, "chunks": chunks, "block_rows": block}
    print(f"large: minimum CVaR over {S:,} scenarios x {N} assets in {chunks} Ray actors", flush=True)
    with connect(num_cpus=chunks):
        t0 = time.perf_counter()
        with ScenarioChunks(sources, pool=actor_pool()) as held:
            out["open_s"] = time.perf_counter() - t0
            print(f"  actors started, chunks generated: {out['open_s']:.1f} s", flush=True)
            t1 = time.perf_counter()
            sol = DistributedCVaR(system, ALPHA).solve(held)
            out["solve_s"] = time.perf_counter() - t1
            out["actor_peak_rss_gb"] = [_rss_gb(b) for b in held.peak_rss()]
        out["wall_s"] = time.perf_counter() - t0
    out["driver_peak_rss_gb"] = _rss_gb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    out.update(cvar=sol.cvar, var=sol.var, bound=sol.bound, status=sol.status, n_cuts=sol.n_cuts,
               n_rounds=sol.n_rounds, n_groups=sol.n_groups, weights_nonzero=int(np.sum(sol.weights > 1e-9)),
               certificate_gap=(sol.objective - sol.bound) / abs(sol.objective))
    print(f"  solve {out['solve_s']:.1f} s ({sol.n_cuts} cuts, {sol.n_rounds} aggregation rounds, {sol.n_groups} "
          f"groups), wall {out['wall_s']:.1f} s; CVaR {sol.cvar:.10g}, certificate gap {out['certificate_gap']:.1e}")
    print(f"  peak RSS: driver {out['driver_peak_rss_gb']:.2f} GB, actors "
          + ", ".join(f"{g:.2f}" for g in out["actor_peak_rss_gb"]) + " GB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    mode.add_argument("--full", action="store_true", help="add 200 x 20,000 and 200 x 100,000 (the peers take minutes each)")
    mode.add_argument("--distributed", action="store_true",
                      help="200 x 100,000: in memory, over chunks (serial and Ray actors), and the peers")
    mode.add_argument("--large", action="store_true",
                      help="10,000,000 x 50 generated inside Ray actors: time and peak memory")
    ap.add_argument("--no-peers", action="store_true", help="--distributed without skfolio and riskfolio-lib")
    ap.add_argument("--scenarios", type=int, default=None, help="scenarios of --distributed / --large")
    ap.add_argument("--chunks", type=int, default=2, help="chunks (Ray actors) of --distributed / --large")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    results = ROOT / "benchmarks" / "results"
    if args.distributed or args.large:
        name = "distributed" if args.distributed else "large"
        print(f"mean-CVaR benchmark ({name}): minimum CVaR at {ALPHA:.0%}, long-only, fully invested; load average "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
        out = _header(name)
        t0 = time.perf_counter()
        if args.distributed:
            out["distributed"] = r = bench_distributed(200, args.scenarios or 100_000, args.chunks, not args.no_peers)
            if not args.no_peers:
                out["versions"].update(_peers_versions())
            print(f"\nchunks over in memory: serial x{r['serial_over_ours']:.2f}, Ray x{r['ray_over_ours']:.2f}; "
                  f"max rel. diff to in memory {max(abs(r['serial_rel_diff']), abs(r['ray_rel_diff'])):.1e}")
            for peer in ("skfolio", "riskfolio"):
                if f"{peer}_s" in r:
                    print(f"{peer}: x{r[f'{peer}_ratio_vs_ours']:.1f} over in memory, x{r[f'{peer}_ratio_vs_ray']:.1f} "
                          f"over Ray actors, x{r[f'{peer}_ratio_vs_serial']:.1f} over serial chunks; rel. diff "
                          f"{r[f'{peer}_rel_diff']:.1e}")
        else:
            out["large"] = bench_large(50, args.scenarios or 10_000_000, args.chunks)
        out["total_s"] = time.perf_counter() - t0
        out["load_average_end"] = os.getloadavg()
        path = Path(args.out or results / f"optimise_{name}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
        return
    args.out = args.out or str(results / "optimise.json")
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
