"""Scenario-engine benchmark: Monte Carlo throughput, GARCH fitting time, block reproducibility cost.

Run:  python benchmarks/scenarios.py [--n 1000000] [--factors 50] [--out FILE]

* Student-t Monte Carlo, instantaneous, ``n`` scenarios over ``factors`` factors (a covariance estimated
  from the bundled history, extended by synthetic factors when the book asks for more than the
  history has), generated in seeded blocks of ``scenarios.BLOCK_SIZE`` in one process and in a pool of
  2 processes, against a plain-numpy baseline that draws the same law in one call (no blocks, no
  seeds per block);
* GARCH(1,1)-t fitting time per factor (arch), and simulation throughput of the GARCH-t (constant and
  DCC correlation), FHS and stationary-bootstrap generators on the demo-sized factor set;
* the DCC path update (``_dcc_innovations``, in place) against the recursion written as in the paper
  (new arrays each day) on the same draws of one block, best of three each, with the ratio; and a
  family's last block cut to half its rows against the whole block.

Numbers are printed and written as JSON to ``--out``.
"""

from __future__ import annotations

from pathlib import Path


import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pydantic import TypeAdapter

from stressgrid import scenarios
from stressgrid.core import load_history
from stressgrid.scenarios import BLOCK_SIZE
from stressgrid.scenarios._montecarlo import FittedMonteCarlo, _psd_factor

WINDOW = {"end": "2017-03-29", "lookback_days": 750}
_STATE: dict = {}


def _model(history, n_factors: int) -> tuple[list[str], np.ndarray]:
    """A covariance ``[F, F]``: the history's factors over the window, plus synthetic ones (one-factor
    equity-like, 1.5% vol, correlation 0.3) if more are asked for."""
    names = [f for f in history.factors if f != "IR.USD.1M"][:n_factors]
    moves, ok = scenarios.daily_moves(history, names, scenarios.WindowSpec(**WINDOW))
    names = list(moves.columns)
    cov, _ = scenarios.estimate_covariance(moves.to_numpy(), scenarios.EstimatorSpec(method="ledoit_wolf"))
    extra = n_factors - len(names)
    if extra > 0:
        F = n_factors
        big = np.zeros((F, F))
        big[: len(names), : len(names)] = cov
        c = np.full((extra, extra), 0.3) + 0.7 * np.eye(extra)
        big[len(names):, len(names):] = c * 0.015 ** 2
        cov = big
        names = names + [f"EQ.SYN{i}" for i in range(extra)]
    return names, cov


def _init(spec_json: str, names, cov, dof, seed_entropy):
    spec = TypeAdapter(scenarios.ScenarioSpec).validate_json(spec_json)
    F = len(names)
    fitted = FittedMonteCarlo(tuple(names), np.arange(F), np.ones(F, bool), np.zeros(F), cov, _psd_factor(cov), dof=dof)
    _STATE.update(spec=spec, fitted=fitted, seed=np.random.SeedSequence(seed_entropy))


def _blocks(rng_blocks: tuple[int, int]) -> float:
    a, b = rng_blocks
    acc = 0.0
    for k in range(a, b):
        shocks, _ = scenarios.generate_block(_STATE["spec"], _STATE["fitted"], k, _STATE["seed"])
        acc += float(shocks[0, 0])  # keep the result alive; returns little data to the parent
    return acc


def bench_mc(history, n: int, n_factors: int) -> dict:
    names, cov = _model(history, n_factors)
    F = len(names)
    dof = 5.0
    spec_d = dict(kind="montecarlo", name="mc", model="student_t", dof=dof, n_scenarios=n, window=WINDOW)
    spec = TypeAdapter(scenarios.ScenarioSpec).validate_python(spec_d)
    nb = scenarios.n_blocks(n)
    seed_entropy = 12345

    # plain numpy baseline: the same law in one call
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(cov)
    x = (rng.standard_normal((n, F)) @ L.T) * np.sqrt((dof - 2) / rng.chisquare(dof, n))[:, None]
    t_np = time.perf_counter() - t0
    del x

    # blocks in one process, kept in memory as the [S, F] array the grid would hold
    _init(json.dumps(spec_d), names, cov, dof, seed_entropy)
    t0 = time.perf_counter()
    out = np.empty((n, F))
    for k in range(nb):
        s, _ = scenarios.generate_block(spec, _STATE["fitted"], k, _STATE["seed"])
        lo = k * BLOCK_SIZE
        out[lo: lo + BLOCK_SIZE] = s[: n - lo]
    t_one = time.perf_counter() - t0

    # the same blocks split over a pool of 2 processes (what two grid workers would do)
    half = nb // 2
    with ProcessPoolExecutor(2, initializer=_init, initargs=(json.dumps(spec_d), names, cov, dof, seed_entropy)) as ex:
        list(ex.map(_blocks, [(0, 1), (1, 2)]))  # warm the workers
        t0 = time.perf_counter()
        list(ex.map(_blocks, [(0, half), (half, nb)]))
        t_two = time.perf_counter() - t0

    # the whole public path (fit on the history + ScenarioSet with names and info), 48 history factors
    hist_f = [f for f in history.factors]
    spec_h = TypeAdapter(scenarios.ScenarioSpec).validate_python(dict(spec_d, n_scenarios=n))
    t0 = time.perf_counter()
    full = scenarios.generate(spec_h, history, hist_f, np.random.SeedSequence(seed_entropy))
    t_full = time.perf_counter() - t0
    return {
        "scenarios": n, "factors": F, "blocks": nb, "block_size": BLOCK_SIZE,
        "numpy_one_call_s": round(t_np, 3),
        "blocks_one_process_s": round(t_one, 3),
        "blocks_two_processes_s": round(t_two, 3),
        "scenarios_per_s_one_process": round(n / t_one),
        "scenarios_per_s_two_processes": round(n / t_two),
        "ratio_blocks_vs_numpy": round(t_one / t_np, 2),
        "generate_public_path_s": round(t_full, 3),
        "generate_public_path_factors": len(full.factors),
    }


def bench_garch(history) -> dict:
    factors = [f for f in history.factors if f.startswith(("EQ.", "FX.", "CMD.", "IR.USD", "VOL."))]
    moves, ok = scenarios.daily_moves(history, factors, scenarios.WindowSpec(**WINDOW))
    g = scenarios.fit_garch(moves.to_numpy())
    res = {"garch_factors": int(len(g.seconds)), "window_days": int(len(moves)),
           "garch_fit_s_per_factor_mean": round(float(g.seconds.mean()), 4),
           "garch_fit_s_per_factor_max": round(float(g.seconds.max()), 4),
           "garch_fit_s_total": round(float(g.seconds.sum()), 3)}
    ta = TypeAdapter(scenarios.ScenarioSpec)
    cases = {
        "garch_t_constant": dict(kind="montecarlo", model="garch_t"),
        "garch_t_dcc": dict(kind="montecarlo", model="garch_t", correlation="dcc"),
        "fhs": dict(kind="montecarlo", model="fhs"),
        "bootstrap": dict(kind="bootstrap", block_length=10),
    }
    for name, d in cases.items():
        spec = ta.validate_python(dict(d, name=name, window=WINDOW, n_scenarios=4 * BLOCK_SIZE, horizon_days=10))
        t0 = time.perf_counter()
        fitted = scenarios.fit(spec, history, factors)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in range(4):
            scenarios.generate_block(spec, fitted, b, np.random.SeedSequence(1))
        t_sim = time.perf_counter() - t0
        res[f"{name}_fit_s"] = round(t_fit, 3)
        res[f"{name}_paths_per_s_10d"] = round(4 * BLOCK_SIZE / t_sim)
    res["factors"] = len(factors)
    return res


def _dcc_textbook(dcc, nu, n):
    """The DCC path recursion as [E02] writes it, each day's arrays new: the baseline of the in-place update."""
    from stressgrid.scenarios._montecarlo import _psd_factors, _t_marginals

    a, b, qbar, qnext = dcc
    B, H, K = n.shape
    z = np.empty_like(n)
    q = np.broadcast_to(qnext, (B, K, K)).copy()
    for t in range(H):
        d = 1.0 / np.sqrt(np.einsum("bii->bi", q))
        r = q * d[:, :, None] * d[:, None, :]
        zt = _t_marginals(np.einsum("bij,bj->bi", _psd_factors(r), n[:, t, :]), nu)
        z[:, t, :] = zt
        q = (1 - a - b) * qbar + a * zt[:, :, None] * zt[:, None, :] + b * q
    return z


def bench_dcc_paths(history) -> dict:
    from stressgrid.scenarios._montecarlo import _dcc_innovations

    factors = [f for f in history.factors if f.startswith(("EQ.", "FX.", "CMD.", "IR.USD", "VOL."))]
    spec = TypeAdapter(scenarios.ScenarioSpec).validate_python(dict(
        kind="montecarlo", model="garch_t", correlation="dcc", name="dcc", window=WINDOW,
        n_scenarios=BLOCK_SIZE, horizon_days=10))
    fitted = scenarios.fit(spec, history, factors)
    n = np.random.default_rng(1).standard_normal((BLOCK_SIZE, 10, len(fitted.garch.nu)))

    def best(f):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_plain, z_plain = best(lambda: _dcc_textbook(fitted.dcc, fitted.garch.nu, n))
    t_new, z_new = best(lambda: _dcc_innovations(fitted.dcc, fitted.garch.nu, n))
    t_whole, _ = best(lambda: scenarios.generate_block(spec, fitted, 0, np.random.SeedSequence(1)))
    t_half, _ = best(lambda: scenarios.generate_block(spec, fitted, 0, np.random.SeedSequence(1), rows=BLOCK_SIZE // 2))
    return {"factors": len(fitted.garch.nu), "paths": BLOCK_SIZE, "days": 10,
            "textbook_update_s": round(t_plain, 3), "in_place_update_s": round(t_new, 3),
            "in_place_speedup": round(t_plain / t_new, 2), "same_bits": bool(np.array_equal(z_plain, z_new)),
            "whole_block_s": round(t_whole, 3), "half_block_s": round(t_half, 3),
            "half_block_ratio": round(t_half / t_whole, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=50)
    ap.add_argument("--out", default=os.environ.get("TMPDIR", "/tmp") + "/stressgrid_bench_scenarios.json")
    a = ap.parse_args()
    history = load_history()
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}}
    out["montecarlo_student_t_instantaneous"] = bench_mc(history, a.n, a.factors)
    out["garch_and_paths"] = bench_garch(history)
    out["dcc_paths"] = bench_dcc_paths(history)
    print(json.dumps(out, indent=2))
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
