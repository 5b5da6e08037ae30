"""Monitoring benchmark: the walk-forward fan-out and two hot spots, each against a baseline measured in
the same run.

* walk-forward: the same steps run serially in this process (baseline), then as Ray tasks on 1 and
  2 workers; speedup = serial wall time / Ray wall time; the tables must be identical;
* average pairwise correlation (the ``avg_corr`` signal) over every 60-day window of the bundled
  stocks: the vectorised identity against a loop of ``numpy.corrcoef`` per window (baseline);
* long-only minimum variance: the cvxpy problem built once per size and re-solved with a new
  parameter (plus the exact polish on the support) against a fresh cvxpy problem per call (baseline).

    python benchmarks/monitoring.py                  # about 90 steps, sample/ewma/ledoit_wolf/dcc
    python benchmarks/monitoring.py --no-ray --start 2014-01-01

Writes ``benchmarks/results/monitoring.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_walk_forward(args) -> dict:
    from stressgrid.core import load_history
    from stressgrid.monitoring import asset_returns, default_factors, run_walk_forward

    h = load_history()
    returns = asset_returns(h, default_factors(h), end="2017-03-29")
    kw = dict(train=args.train, horizon=20, roll=20, start=args.start, end="2017-03-01")
    forecasters = args.forecasters.split(",")
    t0 = time.perf_counter()
    ref = run_walk_forward(returns, forecasters, **kw)
    serial = time.perf_counter() - t0
    out = {"factors": list(returns.columns), "forecasters": forecasters, "steps": int(ref.errors.date.nunique()),
           "train_days": args.train, "serial_seconds": serial,
           "seconds_per_step_by_forecaster": ref.errors.groupby("forecaster").seconds.mean().to_dict()}
    if args.no_ray:
        return out
    import ray

    from stressgrid.cluster import runtime_env
    from stressgrid.grid import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(), logging_level="ERROR")
    try:
        run_walk_forward(returns, forecasters[:1], **{**kw, "start": "2016-06-01"}, executor=RayExecutor(workers=2))  # warm
        times = {}
        diff = 0.0
        diffs = {}
        num = ["cov_error", "corr_error", "qlike", "gmv_variance", "gmv_forecast"]
        for w in (1, 2):
            t0 = time.perf_counter()
            r = run_walk_forward(returns, forecasters, **kw, executor=RayExecutor(workers=w))
            times[w] = time.perf_counter() - t0
            de = (r.errors[num] - ref.errors[num]).abs().max(axis=1).groupby(ref.errors.forecaster).max()
            dw = (r.weights.weight - ref.weights.weight).abs().groupby([ref.weights.forecaster, ref.weights.method]).max()
            diffs[w] = {"errors": {k: float(v) for k, v in de.items()}, "weights": {f"{a}/{b}": float(v) for (a, b), v in dw.items()}}
            diff = max(diff, float(de.max()), float(dw.max()))
    finally:
        ray.shutdown()
    out.update(ray_1_worker_seconds=times[1], ray_2_workers_seconds=times[2],
               speedup_ray1_vs_serial=serial / times[1], speedup_ray2_vs_serial=serial / times[2],
               speedup_2_vs_1=times[1] / times[2], max_abs_diff_vs_serial=diff, diffs_by_model=diffs, identical_results=diff == 0.0)
    return out


def bench_avg_corr() -> dict:
    from stressgrid.core import load_history
    from stressgrid.monitoring import average_correlation
    from stressgrid.monitoring._signals import _moves

    h = load_history()
    cols = [c for c in h.factors if c.startswith("EQ.") and c != "EQ.NASDAQ"]
    moves = _moves(h.levels[cols].loc[:"2022-12-28"])
    w = 60
    t0 = time.perf_counter()
    fast = average_correlation(moves, w).to_numpy()
    t_fast = time.perf_counter() - t0
    x = moves.to_numpy()
    k = x.shape[1]
    t0 = time.perf_counter()
    slow = np.full(len(x), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):  # a stock with a constant price over a window
        for t in range(w - 1, len(x)):
            c = np.corrcoef(x[t - w + 1:t + 1], rowvar=False)
            slow[t] = (c.sum() - k) / (k * (k - 1))
    t_slow = time.perf_counter() - t0
    return {"windows": int(len(x) - w + 1), "series": k, "vectorised_seconds": t_fast, "loop_seconds": t_slow,
            "speedup": t_slow / t_fast, "max_abs_diff": float(np.nanmax(np.abs(fast - slow)))}


def bench_min_variance(n: int = 200, k: int = 10) -> dict:
    import cvxpy as cp

    from stressgrid.monitoring import min_variance_weights

    rng = np.random.default_rng(0)
    covs = []
    for _ in range(n):
        a = rng.standard_normal((250, k)) @ (rng.standard_normal((k, k)) * 0.5 + np.eye(k))
        covs.append(np.cov(a, rowvar=False))
    min_variance_weights(covs[0])  # import cvxpy and build the problem once
    t0 = time.perf_counter()
    ours = [min_variance_weights(c) for c in covs]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = []
    for c in covs:
        w = cp.Variable(k)
        cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(c))), [cp.sum(w) == 1, w >= 0]).solve(solver=cp.CLARABEL)
        base.append(np.clip(w.value, 0, None) / np.clip(w.value, 0, None).sum())
    t_base = time.perf_counter() - t0
    obj = max(abs(o @ c @ o - b @ c @ b) / (b @ c @ b) for o, b, c in zip(ours, base, covs))
    return {"problems": n, "assets": k, "cached_seconds": t_ours, "fresh_problem_seconds": t_base,
            "speedup": t_base / t_ours, "max_rel_objective_diff": float(obj)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forecasters", default="sample,ewma,ledoit_wolf,dcc")
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--start", default="2010-01-01", help="first forecast date")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray runs")
    args = ap.parse_args()

    res = {"avg_corr": bench_avg_corr(), "min_variance": bench_min_variance(), "walk_forward": bench_walk_forward(args)}
    a, m, w = res["avg_corr"], res["min_variance"], res["walk_forward"]
    print(f"avg_corr over {a['windows']} windows of {a['series']} series: vectorised {a['vectorised_seconds']:.3f}s, "
          f"corrcoef loop {a['loop_seconds']:.3f}s, speedup x{a['speedup']:.1f} (max diff {a['max_abs_diff']:.1e})")
    print(f"min variance, {m['problems']} problems of {m['assets']} assets: cached {m['cached_seconds']:.3f}s, "
          f"fresh problem {m['fresh_problem_seconds']:.3f}s, speedup x{m['speedup']:.1f} "
          f"(objective within {m['max_rel_objective_diff']:.1e})")
    print(f"walk-forward, {w['steps']} steps x {len(w['forecasters'])} forecasters on {len(w['factors'])} assets: "
          f"serial {w['serial_seconds']:.2f}s")
    if "ray_1_worker_seconds" in w:
        print(f"  Ray 1 worker {w['ray_1_worker_seconds']:.2f}s (x{w['speedup_ray1_vs_serial']:.2f} vs serial), "
              f"2 workers {w['ray_2_workers_seconds']:.2f}s (x{w['speedup_ray2_vs_serial']:.2f} vs serial, "
              f"x{w['speedup_2_vs_1']:.2f} vs 1 worker); identical: {w['identical_results']} "
              f"(max difference {w['max_abs_diff_vs_serial']:.1e})")
    out = ROOT / "benchmarks" / "results" / "monitoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
