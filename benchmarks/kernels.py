"""Benchmark of the revaluation kernels: JAX against plain numpy, the kernels' numpy twins and QuantLib.

Usage::

    python benchmarks/kernels.py                      # each engine three times in turn, the best run of each (about 3 minutes)
    python benchmarks/kernels.py --repeat 1           # one run of each (about a minute on 2 cores)
    python benchmarks/kernels.py --options 10000 --bonds 2000 --scenarios 200000
    python benchmarks/kernels.py --memory-check       # 10,000 options x 1,000,000 scenarios, chunked

Each measurement runs in a fresh subprocess, so that its peak memory (max RSS) is its own.  For each
book it reports the throughput in instrument-scenario evaluations per second of every engine below,
and its ratio to the baselines measured in the same run.

Books (synthetic, seeded):

* ``option``: European options on 20 equity underlyings and their vol surfaces, expiries 1 week to
  2 years, strikes within 30% of spot;
* ``bond``: fixed-coupon bonds off the USD curve, maturities on random days up to 30 years, annual,
  semi-annual or quarterly coupons, half with one of 50 issuer spreads: few flows share a date;
* ``bond_std``: bonds as markets issue them, semi-annual, maturing on the 15th or at the end of a
  month, half government (no spread), half from 10 issuers: many flows share a date.  For both bond
  books the script prints the flows, the distinct flow times and how the kernel packed them.

Engines:

Every engine is timed on the revaluation of shocks drawn beforehand (``--memory-check`` draws
them chunk by chunk, inside the timing).  The timed work is the P&L of every position under every
scenario, in memory: the JAX engines read only the first chunk's first 16 rows for the checksum
(the numpy twin sums its first chunk outside its timing, and QuantLib's values are not summed).

* ``jax``: :func:`kernels.revalue_stream`, fixed-shape chunks spread over every local device (on a CPU,
  one XLA host device per core: the script sets ``--xla_force_host_platform_device_count``);
  compilation is timed separately (once per instrument type and chunk shape);
* ``jax-procs``: the same kernels as the grid's Ray workers run them: one process per core
  (``--devices`` of them), each computing on one core (``STRESSGRID_ONE_CORE=1``, one XLA device)
  and taking chunks of ``chunk / devices`` scenarios from a shared counter until none is left
  (:func:`kernels.revalue` on each); every process compiles and
  draws its shocks before a common start, and the wall time runs from that start to the last
  process's end.  One process with an XLA device per core (``jax``) spreads each device's work over
  XLA's compute threads and spends more CPU an evaluation than a process of one core (see
  ``docs/kernels.md``);
* ``numpy``: the same chunks through the numpy/scipy twins (:func:`kernels.revalue_numpy`), one core;
* ``plain-1``, ``plain-2``: plain numpy written for the book, at 1 and 2 BLAS threads (threadpoolctl):
  a vectorised Black-Scholes with ``scipy.special.ndtr`` in float64 for the options
  (:func:`plain_option_values`), and for the bonds one discount factor per distinct flow date and
  issuer spread per scenario, then a matrix product of the amounts by the discount factors
  (:func:`plain_bond_pricer`).  numpy's elementwise operations (exponentials, ``ndtr``) run on one
  thread whatever the limit; only the bond pricer's matrix product uses BLAS threads;
* ``quantlib``: a per-scenario QuantLib repricing loop, timed on a sample of instruments and
  scenarios and extrapolated linearly to the whole book (for bonds the per-scenario curve rebuild
  is timed and counted once per scenario).

The table (instrument type, instruments, scenarios, evaluations per second and their ratios to the
twin, to plain numpy at 1 and 2 threads and to QuantLib, per wall-clock second and per CPU-second,
compile seconds, peak memory) is printed with the load average at the start and the end, and
written as JSON (``--out``, default ``benchmarks/results/kernels.json``).

Horizon: the ``jax`` engine also revalues each book aged by ``HORIZON_DAYS`` business days
(:func:`kernels.age`) on the same shocks, in one process per repeat that times today's book and the
aged one in turn three times (engine ``jax-pair``: the two in separate processes differed more from
process to process than from each other); a second table (and the JSON's ``horizon``) gives each
book's median scenarios per second, instantaneous and at the horizon, and the median of the pairs'
ratios.  No assertion on timings: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
AS_OF = "2017-03-29"
USD = {"1M": 0.0076, "3M": 0.0078, "6M": 0.0092, "1Y": 0.0104, "2Y": 0.0126, "3Y": 0.0153, "5Y": 0.0194, "7Y": 0.0223,
       "10Y": 0.0242, "20Y": 0.0281, "30Y": 0.0314}
#: business days of the aged book of the horizon measurement (``jax-pair``)
HORIZON_DAYS = 10


# --------------------------------------------------------------------------------------------------
# synthetic books
# --------------------------------------------------------------------------------------------------


def option_records(n: int, seed: int = 0) -> list[dict]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    und = rng.integers(0, 20, n)
    days = rng.integers(7, 730, n)
    return [
        dict(id=f"O{i}", type="option", underlying=f"EQ.U{und[i]}", quantity=float(rng.uniform(-100, 100)), multiplier=100.0,
             currency="USD", asset_class="equity", sleeve="b", adv=1e6, bid_ask_bps=10.0,
             strike=float(100 * np.exp(rng.uniform(-0.3, 0.3))),
             expiry=(pd.Timestamp(AS_OF) + pd.Timedelta(days=int(days[i]))).date().isoformat(),
             option_type="call" if rng.random() < 0.5 else "put", dividend_yield=0.015)
        for i in range(n)
    ]


def bond_records(n: int, seed: int = 1) -> list[dict]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    days = rng.integers(90, 30 * 365, n)
    return [
        dict(id=f"B{i}", type="bond", underlying="IR.USD.10Y", quantity=float(rng.uniform(1e5, 1e7)), multiplier=1.0,
             currency="USD", asset_class="rates", sleeve="b", adv=1e9, bid_ask_bps=1.0,
             coupon=float(np.round(rng.uniform(0.0, 0.06), 4)), frequency=int(rng.choice([1, 2, 4])),
             maturity=(pd.Timestamp(AS_OF) + pd.Timedelta(days=int(days[i]))).date().isoformat(),
             spread_factor=f"CR.I{rng.integers(0, 50)}" if rng.random() < 0.5 else None)
        for i in range(n)
    ]


def standard_bond_records(n: int, seed: int = 2, issuers: int = 10, govt_share: float = 0.5) -> list[dict]:
    """Bonds as markets issue them: semi-annual coupons, maturities on the 15th or the last day of a
    month (US Treasury notes and bonds mature on one or the other), half of them government bonds
    (no spread), the rest spread over ``issuers`` issuers, so that many bonds share payment dates."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(AS_OF)
    out = []
    for i in range(n):
        m = as_of + pd.DateOffset(months=int(rng.integers(1, 30 * 12 + 1)))
        mat = pd.Timestamp(m.year, m.month, 15) if rng.random() < 0.5 else pd.Timestamp(m.year, m.month, 1) + pd.offsets.MonthEnd(0)
        if mat <= as_of:
            mat = mat + pd.DateOffset(months=6)
        govt = rng.random() < govt_share
        out.append(dict(id=f"B{i}", type="bond", underlying="IR.USD.10Y", quantity=float(rng.uniform(1e5, 1e7)), multiplier=1.0,
                        currency="USD", asset_class="rates", sleeve="b", adv=1e9, bid_ask_bps=1.0,
                        coupon=float(np.round(rng.uniform(0.005, 0.06), 4)), frequency=2, maturity=mat.date().isoformat(),
                        spread_factor=None if govt else f"CR.I{rng.integers(0, issuers)}"))
    return out


#: the books, by the name the table and the JSON give them
BOOKS = {"option": option_records, "bond": bond_records, "bond_std": standard_bond_records}


def levels_for(factors):
    import numpy as np

    out = []
    for f in factors:
        p = f.split(".")
        if p[0] == "EQ":
            out.append(100.0)
        elif p[0] == "IR":
            out.append(USD[p[2]])
        elif p[0] == "CR":
            out.append(0.01)
        elif p[0] == "VOL":
            out.append({"ATM": 0.2, "SKEW": -0.1, "CURV": 0.02, "TERM": 0.01}[p[2]])
        else:
            raise ValueError(f)
    return np.array(out)


def prepared_book(kind: str, n: int):
    import pandas as pd

    from stressgrid import kernels
    from stressgrid.core import book_from_records, log_mask

    recs = BOOKS[kind](n)
    book = book_from_records(recs, source=f"synthetic {kind} book")
    factors = tuple(kernels.required_factors(book.positions, "USD"))
    base = levels_for(factors)
    prepared = kernels.prepare(book.positions, factors, "USD", pd.Timestamp(AS_OF), levels=base)
    return book, prepared, base, log_mask(factors)


def shock_maker(is_log, seed: int = 7):
    import numpy as np

    sd = np.where(is_log, 0.02, 0.001)

    def make(start: int, stop: int):
        rng = np.random.default_rng([seed, start])
        return rng.normal(0.0, 1.0, (stop - start, len(is_log))) * sd

    return make


# --------------------------------------------------------------------------------------------------
# measurements (each in its own process)
# --------------------------------------------------------------------------------------------------


def measure_pair(kind: str, n: int, scenarios: int, chunk: int, pairs: int = 3) -> dict:
    """Today's book and the book aged ``HORIZON_DAYS`` (:func:`kernels.age`) through the ``jax`` engine in
    one process, in turn ``pairs`` times on the same shocks, each compiled before it is timed: the
    horizon's cost relative to the instantaneous revaluation, with the machine's state the same for both."""
    import numpy as np

    from stressgrid import kernels

    book, prepared, base, is_log = prepared_book(kind, n)
    t0 = time.perf_counter()
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, HORIZON_DAYS, base)
    age_s = time.perf_counter() - t0
    make = shock_maker(is_log)
    shocks = np.concatenate([make(a, min(a + chunk, scenarios)) for a in range(0, scenarios, chunk)])

    def rate(b):
        res = kernels.revalue_stream(b, base, shocks, is_log, n_scenarios=scenarios, chunk_size=chunk,
                                     reduce=lambda s, pnl: None)
        return n * scenarios / res.run_seconds, res.compile_seconds

    compile_s = [rate(prepared)[1], rate(aged)[1]]  # compiled (and the buffers touched) before timing
    inst, hz = [], []
    for _ in range(pairs):
        inst.append(rate(prepared)[0])
        hz.append(rate(aged)[0])
    return dict(type=kind, engine="jax-pair", instruments=n, scenarios=scenarios, chunk=chunk, age_seconds=round(age_s, 3),
                instant=inst, horizon=hz, compile_seconds=compile_s)


def measure(kind: str, engine: str, n: int, scenarios: int, chunk: int) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    book, prepared, base, is_log = prepared_book(kind, n)
    build_s = time.perf_counter() - t0
    make = shock_maker(is_log)
    out = dict(type=kind, engine=engine, instruments=n, scenarios=scenarios, chunk=chunk, build_seconds=round(build_s, 3))
    if kind != "option" and engine == "jax":
        out["flows"] = flow_stats(prepared.groups[0].arrays)
    if engine == "jax":
        import jax

        from stressgrid import kernels

        # like the numpy and QuantLib engines, time the revaluation, not the drawing of the shocks;
        # only a run too large to hold its shocks (--memory-check) draws them chunk by chunk
        small = scenarios * len(base) * 8 <= 512 << 20
        shocks = np.concatenate([make(a, min(a + chunk, scenarios)) for a in range(0, scenarios, chunk)]) if small else make
        # the timed work is the P&L in memory, as for the numpy twin (whose checksum is taken outside
        # its timing) and QuantLib (whose values are not summed): only the first 16 rows are read
        res = kernels.revalue_stream(prepared, base, shocks, is_log, n_scenarios=scenarios, chunk_size=chunk,
                                     reduce=lambda s, pnl: pnl[:16].sum(axis=1) if s == 0 else None)
        total = res.results[0]
        out.update(compile_seconds=round(res.compile_seconds, 3), run_seconds=round(res.run_seconds, 3),
                   cpu_seconds=round(res.run_cpu_seconds, 3), evals_per_second=n * scenarios / res.run_seconds,
                   evals_per_cpu_second=n * scenarios / res.run_cpu_seconds, devices=[str(d) for d in jax.local_devices()],
                   checksum=float(total[:16].sum()))
    elif engine == "jax-procs":
        out.update(measure_procs(kind, n, scenarios, chunk, int(os.environ.get("STRESSGRID_BENCH_PROCS", "2"))))
    elif engine == "numpy":
        from stressgrid import kernels

        run = cpu = 0.0
        first = None
        for start in range(0, scenarios, chunk):
            stop = min(start + chunk, scenarios)
            sh = make(start, stop)
            t0, c0 = time.perf_counter(), time.process_time()
            pnl = kernels.revalue_numpy(prepared, base, sh, is_log)
            run += time.perf_counter() - t0
            cpu += time.process_time() - c0
            first = pnl.sum(axis=1) if first is None else first
        out.update(compile_seconds=0.0, run_seconds=round(run, 3), cpu_seconds=round(cpu, 3), evals_per_second=n * scenarios / run,
                   evals_per_cpu_second=n * scenarios / cpu, checksum=float(first[:16].sum()))
    elif engine.startswith("plain-"):
        out.update(plain_numpy(kind, prepared, base, is_log, make, scenarios, chunk, threads=int(engine.split("-")[1])))
    elif engine == "quantlib":
        out.update(quantlib_loop(kind, book, prepared, base, is_log, make, scenarios=scenarios, sample=n))
        out["compile_seconds"] = 0.0
    out["peak_memory_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    if "children_peak_memory_mib" in out:  # jax-procs: the largest of its processes
        out["peak_memory_mib"] = max(out["peak_memory_mib"], out["children_peak_memory_mib"])
    return out


def plain_option_values(o, L: np.ndarray) -> np.ndarray:
    """Values ``[S, n]`` of the option book at levels ``L [S, F]``: a plain vectorised numpy
    Black-Scholes with a continuous dividend yield (Hull, ch. 17), ``scipy.special.ndtr``, float64,
    on the kernels' vol surface (every option of the benchmark book is on an equity index in USD)."""
    from scipy.special import ndtr

    from stressgrid.kernels import T0_YEARS, VOL_FLOOR

    T = o.expiry
    S_ = L[:, o.spot_idx]
    r = o.dom.w_lo * L[:, o.dom.lo] + o.dom.w_hi * L[:, o.dom.hi]
    F = S_ * np.exp((r - o.div_yield) * T)
    k = np.log(o.strike / F)
    x = k / np.sqrt(T)
    atm, skew, curv, term = (L[:, o.vol_idx[:, c]] for c in range(4))
    sd = np.maximum(atm + term * np.log(T / T0_YEARS) + skew * x + curv * x * x, VOL_FLOOR) * np.sqrt(T)
    d1 = -k / sd + 0.5 * sd
    d2 = d1 - sd
    w = o.omega
    return o.units * np.exp(-r * T) * w * (F * ndtr(w * d1) - o.strike * ndtr(w * d2))


def plain_bond_pricer(b):
    """A plain numpy bond pricer that shares discount factors across flow dates: the bonds are
    grouped by issuer spread (or none); each group's distinct flow dates get their discount factor
    ``exp(-(z(t) + s) t)`` once per scenario, ``D [S, K]``, and the group's values are one matrix
    product with its cash-flow amounts, ``D @ A.T`` (``A [n_g, K]``).  Returns ``values(L [S, F]) ->
    [S, n]``."""
    real = b.amounts != 0
    key = np.where(b.spread_w != 0, b.spread_idx, -1)
    groups = []
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        r, j = np.nonzero(real[rows])
        t = b.times[rows][r, j]
        cols = np.stack([t, b.pts.lo[rows][r, j], b.pts.hi[rows][r, j], b.pts.w_lo[rows][r, j], b.pts.w_hi[rows][r, j]], axis=1)
        dates, node = np.unique(cols, axis=0, return_inverse=True)
        A = np.zeros((len(rows), len(dates)))
        np.add.at(A, (r, node.ravel()), b.amounts[rows][r, j])
        groups.append((rows, int(k), dates[:, 0], dates[:, 1].astype(np.int64), dates[:, 2].astype(np.int64), dates[:, 3], dates[:, 4], A))

    def values(L: np.ndarray) -> np.ndarray:
        out = np.empty((L.shape[0], len(b.units)))
        for rows, k, t, lo, hi, w_lo, w_hi, A in groups:
            x = w_lo * L[:, lo] + w_hi * L[:, hi] + (L[:, k:k + 1] if k >= 0 else 0.0)
            out[:, rows] = np.exp(-x * t) @ A.T
        return (out + b.const) * b.units * np.where(b.fx_idx >= 0, L[:, np.maximum(b.fx_idx, 0)], 1.0)

    return values


def plain_numpy(kind, prepared, base, is_log, make, scenarios: int, chunk: int, threads: int) -> dict:
    """The plain numpy baseline of a book (:func:`plain_option_values`, :func:`plain_bond_pricer`) with
    ``threads`` BLAS threads (threadpoolctl).  numpy's elementwise operations (the exponentials, the
    normal CDF) run on one thread whatever the limit; only the bond pricer's matrix products use BLAS."""
    from threadpoolctl import threadpool_limits

    from stressgrid.kernels import shocked_levels

    arrays = prepared.groups[0].arrays
    values = (lambda L: plain_option_values(arrays, L)) if kind == "option" else plain_bond_pricer(arrays)
    run = cpu = 0.0
    first = None
    with threadpool_limits(limits=threads):
        v0 = values(np.asarray(base, dtype=float)[None, :])
        for start in range(0, scenarios, chunk):
            sh = make(start, min(start + chunk, scenarios))
            t0, c0 = time.perf_counter(), time.process_time()
            pnl = values(shocked_levels(base, sh, is_log)) - v0
            run += time.perf_counter() - t0
            cpu += time.process_time() - c0
            first = pnl.sum(axis=1) if first is None else first
    n = pnl.shape[1]
    return dict(compile_seconds=0.0, run_seconds=round(run, 3), cpu_seconds=round(cpu, 3), evals_per_second=n * scenarios / run,
                evals_per_cpu_second=n * scenarios / cpu, threads=threads, checksum=float(first[:16].sum()))


#: seconds a jax-procs process waits for the others at the start (each prepares and compiles first)
PROCS_TIMEOUT_S = 600.0


def _proc_child(kind: str, n: int, scenarios: int, sub: int, counter, barrier, results) -> None:
    """One process of ``jax-procs``: prepare the book, draw the shocks and compile, wait for the
    others, then revalue chunks of ``sub`` scenarios taken from ``counter`` until none is left."""
    import numpy as np

    from stressgrid import kernels

    kernels.configure_process()  # one core: STRESSGRID_ONE_CORE=1
    book, prepared, base, is_log = prepared_book(kind, n)
    shocks = shock_maker(is_log)(0, scenarios)
    F = len(base)
    buf = np.empty((sub, prepared.n), order=kernels.preferred_order(prepared))
    t0 = time.perf_counter()
    kernels.revalue(prepared, base, np.zeros((sub, F)), is_log, out=buf)  # compiles
    compile_s = time.perf_counter() - t0
    barrier.wait(timeout=PROCS_TIMEOUT_S)  # a process that failed to start breaks the barrier for the others
    start, c0 = time.monotonic(), time.process_time()
    first, chunks = None, 0
    while True:
        with counter.get_lock():
            i = counter.value
            counter.value += 1
        a = i * sub
        if a >= scenarios:
            break
        rows = min(sub, scenarios - a)
        block = shocks[a : a + rows] if rows == sub else np.concatenate([shocks[a : a + rows], np.zeros((sub - rows, F))])
        kernels.revalue(prepared, base, block, is_log, out=buf)
        first = float(buf[:16].sum()) if i == 0 else first  # the checksum; the P&L is not reduced, as in `measure`
        chunks += 1
    results.put(dict(start=start, end=time.monotonic(), cpu=time.process_time() - c0, compile=compile_s, chunks=chunks, checksum=first,
                     maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))


def measure_procs(kind: str, n: int, scenarios: int, chunk: int, procs: int) -> dict:
    """The ``jax-procs`` engine: ``procs`` processes of one core each share the scenarios' chunks."""
    import multiprocessing as mp
    import queue

    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join(flags)
    os.environ["STRESSGRID_ONE_CORE"] = "1"
    ctx = mp.get_context("spawn")
    counter, barrier, results = ctx.Value("q", 0), ctx.Barrier(procs), ctx.Queue()
    sub = max(chunk // procs, 1)
    ps = [ctx.Process(target=_proc_child, args=(kind, n, scenarios, sub, counter, barrier, results)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = []
    deadline = time.monotonic() + 2 * PROCS_TIMEOUT_S
    while len(got) < procs:  # a process that dies sends nothing: notice it instead of waiting forever
        try:
            got.append(results.get(timeout=1.0))
        except queue.Empty:
            failed = [p.exitcode for p in ps if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in ps:
                    p.terminate()
                raise RuntimeError(f"a jax-procs process failed (exit codes {[p.exitcode for p in ps]})")
    for p in ps:
        p.join()
    wall = max(r["end"] for r in got) - min(r["start"] for r in got)
    cpu = sum(r["cpu"] for r in got)
    return dict(compile_seconds=round(max(r["compile"] for r in got), 3), run_seconds=round(wall, 3), cpu_seconds=round(cpu, 3),
                evals_per_second=n * scenarios / wall, evals_per_cpu_second=n * scenarios / cpu, processes=procs, chunk_per_process=sub,
                chunks_per_process=[r["chunks"] for r in got], checksum=next(r["checksum"] for r in got if r["checksum"] is not None),
                children_peak_memory_mib=round(max(r["maxrss_mib"] for r in got), 1))


def flow_stats(b) -> dict:
    """What the bond kernel works on: flows, distinct flow times (over the book, and per issuer
    spread), and how :func:`kernels._flows.flow_layout` packed them."""
    import numpy as np

    from stressgrid.kernels._flows import layout_stats

    real = b.amounts != 0
    sp = np.where(b.spread_w != 0, b.spread_idx, -1)
    pairs = np.stack([np.broadcast_to(sp[:, None], b.times.shape)[real], b.times[real]], axis=1)
    return dict(flows=int(real.sum()), padded_width=int(b.times.shape[1]), unique_times=int(len(np.unique(b.times[real]))),
                unique_spread_times=int(len(np.unique(pairs, axis=0))), layout=layout_stats(b.layout))


def quantlib_loop(kind, book, prepared, base, is_log, make, scenarios: int, sample: int) -> dict:
    """Per-scenario QuantLib repricing of a sample; seconds per evaluation, extrapolated."""
    import numpy as np
    import QuantLib as ql

    from stressgrid.core import apply_shocks
    from stressgrid.kernels._options import surface_vol_numpy

    today = ql.Date(29, 3, 2017)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    pos = book.positions.reset_index(drop=True)
    idx = {f: i for i, f in enumerate(prepared.factors)}
    shocks = make(0, scenarios)
    new = apply_shocks(base, shocks, is_log)
    tenors = [k for k in USD]
    node_days = [int(round(__import__("stressgrid.core", fromlist=["tenor_years"]).tenor_years(t) * 365)) for t in tenors]
    if kind == "option":
        o = prepared.groups[0].arrays
        objs = []
        for j in range(len(pos)):
            s, r, v = ql.SimpleQuote(100.0), ql.SimpleQuote(0.01), ql.SimpleQuote(0.2)
            proc = ql.BlackScholesMertonProcess(
                ql.QuoteHandle(s), ql.YieldTermStructureHandle(ql.FlatForward(today, 0.015, dc)),
                ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(r), dc)),
                ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(v), dc)))
            opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if o.omega[j] > 0 else ql.Option.Put, float(o.strike[j])),
                                   ql.EuropeanExercise(today + int(round(o.expiry[j] * 365))))
            opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
            objs.append((s, r, v, opt))
        t0, c0 = time.perf_counter(), time.process_time()
        acc = 0.0
        for k in range(scenarios):
            # market inputs of every sampled option, vectorised (the fair way to drive QuantLib)
            L = new[k]
            S = L[o.spot_idx]
            rd = o.dom.w_lo * L[o.dom.lo] + o.dom.w_hi * L[o.dom.hi]
            F = S * np.exp((rd - o.div_yield) * o.expiry)
            sig = surface_vol_numpy(*(L[o.vol_idx[:, c]] for c in range(4)), np.log(o.strike / F), o.expiry)
            for j, (s, r, v, opt) in enumerate(objs):
                s.setValue(float(S[j]))
                r.setValue(float(rd[j]))
                v.setValue(float(sig[j]))
                acc += opt.NPV()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_eval = dt / (scenarios * len(objs))
        return dict(run_seconds=round(dt, 3), cpu_seconds=round(cpu, 3), evals_per_second=1.0 / per_eval,
                    evals_per_cpu_second=scenarios * len(objs) / cpu, sample_instruments=len(objs), sample_scenarios=scenarios,
                    extrapolation="seconds per option-scenario x instruments x scenarios")
    # bonds: one curve rebuild per scenario, then every bond
    handle = ql.RelinkableYieldTermStructureHandle()
    bonds = []
    for _, row in pos.iterrows():
        mat = ql.Date(row["maturity"].day, row["maturity"].month, row["maturity"].year)
        per = ql.Period(12 // int(row["frequency"]), ql.Months)
        sched = ql.Schedule(mat - ql.Period(12 // int(row["frequency"]) * int(row["frequency"]) * 50, ql.Months), mat, per, ql.NullCalendar(),
                            ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
        b = ql.FixedRateBond(0, 100.0, sched, [float(row["coupon"])], ql.ActualActual(ql.ActualActual.ISMA), ql.Unadjusted)
        sp = ql.SimpleQuote(0.0)
        b.setPricingEngine(ql.DiscountingBondEngine(ql.YieldTermStructureHandle(
            ql.ZeroSpreadedTermStructure(handle, ql.QuoteHandle(sp), ql.Continuous))))
        bonds.append((sp, row["spread_factor"], b))
    ir_cols = [idx[f"IR.USD.{t}"] for t in tenors]
    dates = [today] + [today + d for d in node_days] + [today + 36500]
    t_curve = t_bonds = c_curve = c_bonds = 0.0
    for k in range(scenarios):
        L = new[k]
        t0, c0 = time.perf_counter(), time.process_time()
        z = [float(L[c]) for c in ir_cols]
        handle.linkTo(ql.ZeroCurve(dates, [z[0]] + z + [z[-1]], dc, ql.NullCalendar(), ql.Linear(), ql.Continuous))
        t1, c1 = time.perf_counter(), time.process_time()
        for sp, sf, b in bonds:
            sp.setValue(float(L[idx[sf]]) if isinstance(sf, str) else 0.0)
            b.NPV()
        t2, c2 = time.perf_counter(), time.process_time()
        t_curve += t1 - t0
        t_bonds += t2 - t1
        c_curve += c1 - c0
        c_bonds += c2 - c1
    per_curve = t_curve / scenarios
    per_bond = t_bonds / (scenarios * len(bonds))
    return dict(run_seconds=round(t_curve + t_bonds, 3), cpu_seconds=round(c_curve + c_bonds, 3), sample_instruments=len(bonds),
                sample_scenarios=scenarios, curve_seconds_per_scenario=per_curve, seconds_per_bond_eval=per_bond,
                curve_cpu_seconds_per_scenario=c_curve / scenarios, cpu_seconds_per_bond_eval=c_bonds / (scenarios * len(bonds)),
                evals_per_second=1.0 / per_bond, extrapolation="per scenario: curve rebuild + instruments x seconds per bond")


def chunk_for(instruments: int, devices: int, budget_bytes: int = 32 << 20) -> int:
    """Scenarios per chunk: ``devices x (2^k - 1)``, the largest with ``2^k`` rows per device at most
    ``4096 / devices`` (at least 64) whose P&L per device stays under ``budget_bytes``.

    The stream reuses its chunk buffers and the kernels their value buffers; the arrays a call still
    makes (the shocked levels, the program's temporaries) grow with the chunk, and above 32 MiB glibc
    maps them fresh from the operating system on every call.  Below the cap, a larger chunk spreads
    each call's fixed cost (dispatch) over more scenarios.  One row short of a power of two, a
    device's call leaves one column of its last block for the base levels
    (:func:`kernels._edge.blocks_with_base`) instead of computing a block of them.
    """
    per_device = max(budget_bytes // (8 * instruments), 64)
    rows = min(1 << int(np.log2(per_device)), max(4096 // devices, 64))
    return int(devices * (rows - 1))


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1, else a one-line usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


#: the engines of a book's rows, in the table's order
ENGINES = ("jax", "jax-procs", "numpy", "plain-1", "plain-2", "quantlib")


def run_sub(args: list[str], env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--options", type=int, default=2000, help="options in the option book")
    ap.add_argument("--bonds", type=int, default=500, help="bonds in the bond book")
    ap.add_argument("--scenarios", type=int, default=20000)
    ap.add_argument("--chunk", type=int, default=None,
                    help="scenarios per chunk, a multiple of the device count (default: chunk_for(instruments, devices))")
    ap.add_argument("--devices", type=int, default=os.cpu_count(), help="XLA host devices on a CPU (default: cores)")
    ap.add_argument("--ql-sample", type=int, default=200, help="instruments in the QuantLib sample")
    ap.add_argument("--ql-scenarios", type=int, default=200, help="scenarios in the QuantLib sample")
    ap.add_argument("--repeat", type=_positive, default=3,
                    help="runs of each engine, in turn; the table shows each engine's best run, the one the machine "
                         "disturbed least (default 3: single runs of the JAX engines vary by a third on a shared machine)")
    ap.add_argument("--memory-check", action="store_true", help="only the 10,000 x 1,000,000 chunked run of one book (--memory-kind)")
    ap.add_argument("--memory-kind", choices=sorted(BOOKS), default="option", help="the book of --memory-check")
    ap.add_argument("--memory-scenarios", type=int, default=1_000_000, help="scenarios of --memory-check")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "kernels.json")
    ap.add_argument("--worker", nargs=5, metavar=("KIND", "ENGINE", "N", "S", "CHUNK"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, engine, n, s, c = a.worker
        if engine != "jax-procs":  # its processes set themselves up
            from stressgrid import kernels

            kernels.configure_process()
        if engine == "jax-pair":
            print(json.dumps(measure_pair(kind, int(n), int(s), int(c))))
        else:
            print(json.dumps(measure(kind, engine, int(n), int(s), int(c))))
        return

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={a.devices}").strip()
    env["JAX_ENABLE_X64"] = "1"
    rows, horizon = [], []
    load_start = os.getloadavg()
    if a.memory_check:
        rows.append(run_sub([a.memory_kind, "jax", "10000", str(a.memory_scenarios), str(a.chunk or chunk_for(10000, a.devices))], env))
    else:
        for kind, n in (("option", a.options), ("bond", a.bonds), ("bond_std", a.bonds)):
            chunk = a.chunk or chunk_for(n, a.devices)
            runs = {e: [] for e in ENGINES}
            aged = []
            for _ in range(a.repeat):  # the engines in turn, so that a busy spell of the machine hits all of them
                runs["jax"].append(run_sub([kind, "jax", str(n), str(a.scenarios), str(chunk)], env))
                aged.append(run_sub([kind, "jax-pair", str(n), str(a.scenarios), str(chunk)], env))
                runs["jax-procs"].append(run_sub([kind, "jax-procs", str(n), str(a.scenarios), str(chunk)],
                                                 dict(env, STRESSGRID_BENCH_PROCS=str(a.devices))))
                for engine in ("numpy", "plain-1", "plain-2"):
                    runs[engine].append(run_sub([kind, engine, str(n), str(a.scenarios), str(chunk)], env))
                qls = run_sub([kind, "quantlib", str(min(a.ql_sample, n)), str(a.ql_scenarios), str(chunk)], env)
                # QuantLib time for the whole book, extrapolated from the sample (wall and CPU)
                if kind != "option":
                    ql_book_s = a.scenarios * (qls["curve_seconds_per_scenario"] + n * qls["seconds_per_bond_eval"])
                    ql_book_cpu = a.scenarios * (qls["curve_cpu_seconds_per_scenario"] + n * qls["cpu_seconds_per_bond_eval"])
                else:
                    ql_book_s = n * a.scenarios / qls["evals_per_second"]
                    ql_book_cpu = n * a.scenarios / qls["evals_per_cpu_second"]
                qls["evals_per_second"] = n * a.scenarios / ql_book_s
                qls["evals_per_cpu_second"] = n * a.scenarios / ql_book_cpu
                qls["extrapolated_seconds"] = ql_book_s
                runs["quantlib"].append(qls)
            # the best run of each engine (the least disturbed), with every run's rate kept alongside
            best = {}
            for engine, rs in runs.items():
                best[engine] = max(rs, key=lambda r: r["evals_per_second"])
                best[engine]["runs_evals_per_second"] = [r["evals_per_second"] for r in rs]
            for r in best.values():
                for base_engine, name in (("numpy", "twin"), ("plain-1", "plain_1"), ("plain-2", "plain_2"), ("quantlib", "quantlib")):
                    r[f"ratio_to_{name}"] = r["evals_per_second"] / best[base_engine]["evals_per_second"]
                    r[f"cpu_ratio_to_{name}"] = r["evals_per_cpu_second"] / best[base_engine]["evals_per_cpu_second"]
            npy = best["numpy"]
            for engine in ("jax", "jax-procs", "plain-1", "plain-2"):
                r = best[engine]
                if abs(r["checksum"] - npy["checksum"]) > 1e-8 * (1 + abs(npy["checksum"])):
                    raise SystemExit(f"{kind}: {engine} and numpy disagree ({r['checksum']} vs {npy['checksum']})")
            rows += [best[e] for e in ENGINES]
            # each pair of runs in one process, one after the other: the median of their ratios
            inst = [v / n for r in aged for v in r["instant"]]
            hzs = [v / n for r in aged for v in r["horizon"]]
            ratios = [h / i for h, i in zip(hzs, inst)]
            horizon.append(dict(type=kind, instruments=n, scenarios=a.scenarios, chunk=chunk, horizon_days=HORIZON_DAYS,
                                instantaneous_scenarios_per_second=float(np.median(inst)),
                                horizon_scenarios_per_second=float(np.median(hzs)),
                                ratio=float(np.median(ratios)), runs_ratio=ratios,
                                runs_instantaneous_scenarios_per_second=inst, runs_horizon_scenarios_per_second=hzs,
                                horizon_compile_seconds=aged[0]["compile_seconds"][1], age_seconds=aged[0]["age_seconds"]))
    load = os.getloadavg()
    header = (f"{'type':8} {'engine':9} {'instruments':>11} {'scenarios':>10} {'evals/s':>12} {'x twin':>7} {'x plain1':>8} {'x plain2':>8} "
              f"{'x QL':>6} {'evals/cpu-s':>12} {'x plain1':>8} {'x QL':>6} {'compile s':>9} {'peak MiB':>8}")
    print(f"{'':42} {'------------------ wall clock ------------------':>48} {'--- per CPU-second (all threads) ---':>28}")
    print(header)
    print("-" * len(header))
    nan = float("nan")
    for r in rows:
        print(f"{r['type']:8} {r['engine']:9} {r['instruments']:>11,} {r['scenarios']:>10,} {r['evals_per_second']:>12,.0f} "
              f"{r.get('ratio_to_twin', nan):>7.2f} {r.get('ratio_to_plain_1', nan):>8.2f} {r.get('ratio_to_plain_2', nan):>8.2f} "
              f"{r.get('ratio_to_quantlib', nan):>6.0f} {r.get('evals_per_cpu_second', nan):>12,.0f} {r.get('cpu_ratio_to_plain_1', nan):>8.2f} "
              f"{r.get('cpu_ratio_to_quantlib', nan):>6.0f} {r['compile_seconds']:>9.2f} {r['peak_memory_mib']:>8,.0f}")
    print(f"load average (1, 5, 15 min): {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at the start, "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {os.cpu_count()} CPUs")
    print("twin: the kernels' numpy twins; plain1/plain2: plain numpy (Black-Scholes with scipy's ndtr; bonds with one discount factor "
          "per distinct flow date and a matrix product) at 1 and 2 BLAS threads (numpy's elementwise work is single-threaded either way); "
          "QL: QuantLib loop, sampled and extrapolated")
    for r in rows:
        if "flows" in r:
            f = r["flows"]
            lay = f["layout"]
            print(f"{r['type']}: {r['instruments']:,} bonds, {f['flows']:,} flows (padded width {f['padded_width']}), "
                  f"{f['unique_times']:,} distinct flow times, {f['unique_spread_times']:,} distinct (spread, time); "
                  f"{lay['curve_node_classes']} classes in {lay['batches']} batches, {lay['curve_node_factors']:,} discount factors "
                  f"a scenario on {lay['curve_nodes']:,} curve nodes")
    if horizon:
        print(f"\njax engine, today's book against the book aged {HORIZON_DAYS} business days (kernels.age), same shocks:")
        hh = f"{'type':8} {'instruments':>11} {'scenarios':>10} {'instant scen/s':>14} {'horizon scen/s':>14} {'horizon/instant':>15}"
        print(hh)
        print("-" * len(hh))
        for h in horizon:
            print(f"{h['type']:8} {h['instruments']:>11,} {h['scenarios']:>10,} {h['instantaneous_scenarios_per_second']:>14,.0f} "
                  f"{h['horizon_scenarios_per_second']:>14,.0f} {h['ratio']:>15.2f}")
    meta = dict(machine=platform.machine(), processor=platform.processor(), cpus=os.cpu_count(), python=platform.python_version(),
                xla_flags=env["XLA_FLAGS"], args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "worker"},
                load_average_start=load_start, load_average_end=load,
                note="QuantLib rows: a sample timed and extrapolated to the full book (see each row's fields). plain-1/plain-2: plain "
                     "numpy baselines at 1 and 2 BLAS threads (threadpoolctl); numpy's elementwise operations use one thread either way.")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(meta=meta, rows=rows, horizon=horizon), indent=2))
    print(f"written {a.out}")

if __name__ == "__main__":
    main()
