"""What each specialised layer of the batched bond and option kernels gains, measured in one process.

Usage::

    python benchmarks/kernel_layers.py                       # every layer, every book it applies to
    python benchmarks/kernel_layers.py --layers sub_blocks fast_exp --rounds 9

For each layer the script switches it off (constants of ``kernels._tuning``; the bond layout is
packed again where the layer is part of it), and times the kernel with and without
it, alternately, on the books of ``benchmarks/kernels.py`` (500 random-day bonds, 500 market-date
bonds, 2,000 options), one core, :func:`stressgrid.kernels.revalue` on chunks of 4,095 (bonds) or
2,047 (options) scenarios into a Fortran-ordered buffer (``transpose_tile``: a C-ordered one).  Each
variant's time is its best of ``--rounds``; the ratio is ``time without / time with`` (1.15: the layer
saves 13% of the time, i.e. the kernel runs 15% faster with it).  The largest difference between the
two variants' P&L, relative to the largest P&L, is printed beside it: switching a layer off must not
change a result beyond rounding.  The table is also written as JSON (``--out``), with the load
average.  No timing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _bench_module():
    """``benchmarks/kernels.py`` (its books), loaded by file path."""
    spec = importlib.util.spec_from_file_location("stressgrid_kernel_bench", HERE / "kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def _settings(**values):
    from stressgrid.kernels import _curve_nodes, _tuning

    old = {k: getattr(_tuning, k) for k in values}
    try:
        for k, v in values.items():
            setattr(_tuning, k, v)
        _curve_nodes.nodes_needed.cache_clear()
        yield
    finally:
        for k, v in old.items():
            setattr(_tuning, k, v)
        _curve_nodes.nodes_needed.cache_clear()


def _with_layout(prepared):
    """``prepared`` with its bond group's flows packed again under the current tuning."""
    from stressgrid.kernels._flows import flow_layout

    g = prepared.groups[0]
    arrays = g.arrays._replace(layout=flow_layout(g.arrays.rows()))
    return dataclasses.replace(prepared, groups=(g._replace(arrays=arrays),))


#: layer -> (books it applies to, the ``kernels._tuning`` values that switch it off, and whether the
#: bond layout is packed again under them)
LAYERS = {
    "curve_nodes": (("bond", "bond_std"), dict(CURVE_NODES=False), False),
    "class_batches": (("bond", "bond_std"), dict(MAX_BATCHES=1), True),
    "scenario_blocks": (("bond", "bond_std", "option"), dict(SCENARIO_BLOCK=0), False),  # 0: one pass of the whole chunk
    "transpose_tile": (("bond", "bond_std", "option"), dict(TRANSPOSE_TILE=0), False),
    "log_spot": (("option",), dict(LOG_SPOT_PER_UNDERLYING=False), False),
    "tail_ratio": (("option",), dict(TAIL_RATIO=False), False),
}


def measure(bench, kind: str, layer: str, rounds: int, chunks: int) -> dict:
    from stressgrid import kernels

    n = 2000 if kind == "option" else 500
    S = 2047 if kind == "option" else 4095
    _, prepared, base, is_log = bench.prepared_book(kind, n)
    make = bench.shock_maker(is_log)
    shocks = [make(i * S, (i + 1) * S) for i in range(chunks)]
    books, tune, repack = LAYERS[layer]
    off = dict(tune)
    if off.get("SCENARIO_BLOCK") == 0:
        off["SCENARIO_BLOCK"] = S + 1
    order = "C" if layer == "transpose_tile" else "F"
    variants = {"with": (prepared, {}), "without": (prepared, off)}
    if repack:
        with _settings(**off):
            variants["without"] = (_with_layout(prepared), off)
    times = {k: [] for k in variants}
    outs = {k: np.empty((S, n), order=order) for k in variants}
    check = {}
    for name, (book, tun) in variants.items():  # compile, and keep the first chunk's P&L
        with _settings(**tun):
            kernels.revalue(book, base, shocks[0], is_log, out=outs[name])
            check[name] = outs[name].copy()
    for _ in range(rounds):
        for name, (book, tun) in variants.items():
            with _settings(**tun):
                t0 = time.perf_counter()
                for sh in shocks:
                    kernels.revalue(book, base, sh, is_log, out=outs[name])
                times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    scale = float(np.abs(check["with"]).max())
    return dict(layer=layer, book=kind, instruments=n, scenarios_per_chunk=S, chunks=chunks, rounds=rounds,
                ns_with=best["with"] / (n * S * chunks) * 1e9, ns_without=best["without"] / (n * S * chunks) * 1e9,
                ratio=best["without"] / best["with"], max_rel_diff=float(np.abs(check["with"] - check["without"]).max()) / scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", nargs="*", choices=sorted(LAYERS), default=None, help="default: every layer")
    ap.add_argument("--books", nargs="*", choices=("bond", "bond_std", "option"), default=None, help="default: every book")
    ap.add_argument("--rounds", type=int, default=7, help="alternating timings of each variant; the best is kept")
    ap.add_argument("--chunks", type=int, default=3, help="chunks per timing")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "kernel_layers.json")
    a = ap.parse_args()

    from stressgrid import kernels

    kernels.configure_process(one_core=True)
    bench = _bench_module()
    rows = []
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    print(f"{'layer':18} {'book':8} {'ns with':>8} {'ns without':>10} {'ratio':>6} {'max rel diff':>12}")
    for layer in a.layers or LAYERS:
        for kind in LAYERS[layer][0]:
            if a.books and kind not in a.books:
                continue
            r = measure(bench, kind, layer, a.rounds, a.chunks)
            rows.append(r)
            print(f"{layer:18} {kind:8} {r['ns_with']:8.2f} {r['ns_without']:10.2f} {r['ratio']:6.2f} {r['max_rel_diff']:12.1e}", flush=True)
    load = os.getloadavg()
    print(f"load average (1, 5, 15 min) at end: {load}; cpus: {os.cpu_count()}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(load_average=load, cpus=os.cpu_count(), rows=rows), indent=2))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
