"""How a grid worker splits its chunk into kernel calls."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stressgrid import kernels
from stressgrid.grid import _worker


def test_the_worker_knows_the_kernels_pass():
    from stressgrid.kernels._tuning import SCENARIO_BLOCK  # the pass of the cash-flow and option kernels

    assert _worker.KERNEL_PASS == SCENARIO_BLOCK


@pytest.fixture(scope="module")
def demo_payload(demo_prepared):
    _, snap, prepared = demo_prepared
    return SimpleNamespace(book=prepared, base_levels=snap.levels, is_log=snap.is_log, block_size=128)


@pytest.mark.parametrize("block_size, call_rows", [(128, 127), (100, 100), (64, 64)])
def test_a_block_of_whole_passes_is_revalued_one_row_short(demo_payload, monkeypatch, block_size, call_rows):
    """Calls of ``block_size - 1`` rows when the block size fills whole passes of the kernels (the base
    levels then take the last column of the last pass), of ``block_size`` otherwise; every scenario
    gets the P&L of a direct revaluation, and zero shocks exactly zero."""
    payload = SimpleNamespace(**{**vars(demo_payload), "block_size": block_size})
    rng = np.random.default_rng(4)
    shocks = rng.normal(0, 1, (300, len(payload.base_levels))) * np.where(payload.is_log, 0.02, 0.001)
    shocks[[0, 150, 299]] = 0.0
    rows = []
    original = kernels.revalue_groups
    monkeypatch.setattr(kernels, "revalue_groups", lambda book, base, sh, is_log: rows.append(len(sh)) or original(book, base, sh, is_log))
    pnl = np.zeros((len(shocks), payload.book.n))
    starts = []
    for a, b, groups, _, _ in _worker._blocks(payload, shocks):
        starts.append(a)
        for cols, g in groups:
            kernels.place(pnl[a:b], cols, g)
    assert set(rows) == {call_rows}
    assert starts == list(range(0, len(shocks), call_rows))
    want = kernels.revalue_numpy(payload.book, payload.base_levels, shocks, payload.is_log)
    assert np.max(np.abs(pnl - want) / (np.abs(want).max(axis=0) + 1.0)) < 1e-10
    assert np.all(pnl[[0, 150, 299]] == 0.0)
