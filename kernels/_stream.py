"""Revalue many scenarios in fixed-shape chunks, spread over the local JAX devices, in bounded memory.

A ``[S, n]`` P&L matrix of a large run does not fit in memory (10,000 positions x 1,000,000 scenarios
is 80 GB), so :func:`revalue_stream` evaluates one chunk at a time and hands each chunk's P&L to a
``reduce`` callback (portfolio P&L, the k worst losses, ...), never holding more than a few chunks.

Every chunk has the same shape (the last is padded with zero shocks), so each kernel compiles once
per instrument type and chunk shape, whatever the number of scenarios.  A chunk is split evenly over
``devices`` (default: every local JAX device: the GPUs when JAX sees any, else the CPU devices), one
thread per device; JAX releases the GIL while a computation runs, so the devices work in parallel.
On a CPU, JAX shows one device unless the process starts with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` (what ``benchmarks/kernels.py`` does).
Each device's thread writes its rows of the chunk's P&L in place, the next chunk's shocks are made
on another thread while the devices work, and the devices start on the next chunk while ``reduce``
reads this one (two chunk buffers in turn).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from ._revalue import PreparedBook, preferred_order, revalue

__all__ = ["StreamResult", "revalue_stream"]


class StreamResult(NamedTuple):
    """What :func:`revalue_stream` returns.

    results : list of ``reduce(start, pnl)`` per chunk, in scenario order
    compile_seconds : time of the first (warm-up) call per device, trace and compile included (and the
        first touch of the chunk buffers)
    run_seconds : wall time of all chunks after compilation
    chunks : number of chunks
    run_cpu_seconds : CPU time of this process (all its threads) over the same chunks; on a machine
        that other work shares, ``evaluations / run_cpu_seconds`` is the throughput per busy core
    """

    results: list[Any]
    compile_seconds: float
    run_seconds: float
    chunks: int
    run_cpu_seconds: float = float("nan")


def revalue_stream(
    book: PreparedBook,
    base: np.ndarray,
    shocks: np.ndarray | Callable[[int, int], np.ndarray],
    is_log: np.ndarray,
    n_scenarios: int | None = None,
    chunk_size: int = 4096,
    reduce: Callable[[int, np.ndarray], Any] | None = None,
    devices: list | None = None,
) -> StreamResult:
    """Full-revaluation P&L of ``n_scenarios`` scenarios, chunk by chunk.

    Parameters
    ----------
    book, base, is_log : as for :func:`kernels.revalue`
    shocks : array ``[S, F]``, or a function ``(start, stop) -> [stop - start, F]`` that makes each
        chunk's shocks on demand (so that not even the shocks need to be held in memory)
    n_scenarios : ``S`` (required when ``shocks`` is a function)
    chunk_size : scenarios per chunk; a multiple of the number of devices
    reduce : ``(start, pnl[m, n]) -> anything``; default keeps the P&L chunk itself.  A given
        ``reduce`` receives one of two arrays that the chunks take in turn (the devices fill the next
        chunk while ``reduce`` reads this one), overwritten two chunks later: it must copy what it
        keeps (the buffers are reused because fresh memory for every chunk of a large book costs a page
        fault per 4 KiB).  The chunk is in the memory order the book's kernels write fastest
        (:func:`kernels.preferred_order`: Fortran order, each position's scenarios contiguous, for a
        book of options, bonds and swaps), which numpy reductions and matrix products take as it is
    devices : JAX devices to spread each chunk over (default ``jax.local_devices()``)
    """
    if callable(shocks):
        if n_scenarios is None:
            raise ValueError("n_scenarios is required when shocks is a function")
        make = shocks
    else:
        arr = np.asarray(shocks, dtype=float)
        n_scenarios = len(arr) if n_scenarios is None else n_scenarios
        make = lambda a, b: arr[a:b]  # noqa: E731
    devices = list(devices or jax.local_devices())
    k = len(devices)
    if chunk_size % k:
        raise ValueError(f"chunk_size {chunk_size} must be a multiple of the {k} devices")
    sub = chunk_size // k
    F = len(base)
    pool = ThreadPoolExecutor(max_workers=k)
    ahead = ThreadPoolExecutor(max_workers=1)  # makes the next chunk's shocks while the devices work

    def run_on(dev, block, out):
        with jax.default_device(dev):
            revalue(book, base, block, is_log, out=out)  # each thread writes its rows of the chunk

    order = preferred_order(book)
    # two buffers for a given reduce: the devices fill one chunk while ``reduce`` reads the other
    buffers = [np.empty((chunk_size, book.n), order=order) for _ in range(2)] if reduce is not None else None
    reduce = reduce or (lambda start, pnl: pnl)

    def start_chunk(block: np.ndarray, i: int):
        """Queue chunk ``i``'s rows on the devices; returns the chunk's array and the devices' futures."""
        out = buffers[i % 2] if buffers is not None else np.empty((chunk_size, book.n), order=order)
        rows = [slice(j * sub, (j + 1) * sub) for j in range(k)]
        return out, [pool.submit(run_on, d, block[r], out[r]) for d, r in zip(devices, rows)]

    def finish(job) -> np.ndarray:
        out, futures = job
        for f in futures:
            f.result()
        return out

    def shocks_of(start: int) -> np.ndarray:
        stop = min(start + chunk_size, n_scenarios)
        block = np.asarray(make(start, stop), dtype=float)
        if stop - start < chunk_size:
            block = np.concatenate([block, np.zeros((chunk_size - (stop - start), F))])
        return block

    try:
        t0 = time.perf_counter()
        finish(start_chunk(np.zeros((chunk_size, F)), 0))
        if buffers is not None:
            buffers[1].fill(0.0)  # the operating system maps its pages now, not during the first chunks
        compile_s = time.perf_counter() - t0
        out = []
        t0, c0 = time.perf_counter(), time.process_time()
        starts = list(range(0, n_scenarios, chunk_size))
        nxt = ahead.submit(shocks_of, starts[0]) if starts else None
        job = None
        for i, start in enumerate(starts):
            if job is None:
                job = start_chunk(nxt.result(), i)
                nxt = ahead.submit(shocks_of, starts[i + 1]) if i + 1 < len(starts) else None
            pnl = finish(job)
            job = None
            if nxt is not None:  # the next chunk runs while this one is reduced
                job = start_chunk(nxt.result(), i + 1)
                nxt = ahead.submit(shocks_of, starts[i + 2]) if i + 2 < len(starts) else None
            out.append(reduce(start, pnl[: min(chunk_size, n_scenarios - start)]))
        run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        pool.shutdown()
        ahead.shutdown()
    return StreamResult(out, compile_s, run_s, len(out), run_cpu)
