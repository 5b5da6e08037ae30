import numpy as np
import pytest

from stressgrid.grid import auto_chunk_size, plan_tasks
from stressgrid.grid._plan import auto_block_size


@pytest.mark.parametrize("n, chunk", [(1, 64), (1000, 64), (1000, 1000), (1001, 250)])
def test_chunks_cover_every_scenario_once(n, chunk):
    tasks = plan_tasks(n, chunk, root_seed=3)
    covered = np.concatenate([np.arange(t.start, t.stop) for t in tasks])
    assert np.array_equal(covered, np.arange(n))
    assert all(t.size <= chunk for t in tasks)


def test_task_seeds_come_from_the_root_seed():
    a, b = plan_tasks(1000, 100, 42), plan_tasks(1000, 100, 42)
    assert [t.seed for t in a] == [t.seed for t in b]
    assert len({t.seed for t in a}) == len(a)
    ref = np.random.SeedSequence(42).spawn(10)
    assert a[3].seed == tuple(int(x) for x in ref[3].generate_state(4))
    assert plan_tasks(1000, 100, 43)[0].seed != a[0].seed


def test_auto_chunk_size_shrinks_with_the_book_and_stays_within_the_cell_bounds():
    assert auto_chunk_size(40, 50) > auto_chunk_size(10_000, 50)
    for n, f, S in [(49, 95, 10_696), (490, 95, 200_000), (4_900, 95, 40_000), (10_000, 50, 1_000_000), (40, 50, 3_000_000)]:
        width = max(n, f)
        block, chunk = auto_block_size(n, f), auto_chunk_size(n, f, S)
        assert chunk % block == 0 or chunk == S
        tasks = plan_tasks(S, chunk, 0)
        if S * width <= 2**22:
            assert len(tasks) == 1
            continue
        assert 2**22 <= chunk * width <= 2**24 + block * width  # the cell bounds, up to one block of rounding
        # evened out: every task but the last the same size, the last one at least half full where it
        # matters (a few dozen tasks; among hundreds, a short last task costs nothing)
        assert len({t.size for t in tasks[:-1]}) <= 1
        assert tasks[-1].size >= chunk / 2 or len(tasks) > 100


def test_a_large_batch_is_split_into_about_the_target_number_of_tasks():
    assert 14 <= len(plan_tasks(200_000, auto_chunk_size(490, 95, 200_000), 0)) <= 20
    assert 14 <= len(plan_tasks(40_000, auto_chunk_size(4_900, 95, 40_000), 0)) <= 20
    # the demo-sized batch is below the lower bound: one task
    assert auto_chunk_size(49, 95, 10_696) == 10_696


def test_blocks_fit_the_cache_budget():
    for n, f in [(1, 1), (49, 95), (490, 95), (10_000, 50), (100_000, 50)]:
        block = auto_block_size(n, f)
        assert 256 <= block <= 16384 and block & (block - 1) == 0
        assert block * max(n, f) <= 2**20 or block == 256


def test_the_second_pass_is_split_like_the_first():
    from stressgrid.grid._plan import tail_chunk_size

    # 5% of 40,000 scenarios of 4,900 positions: 9.8 million cells, four tasks of whole blocks
    chunk = tail_chunk_size(2_000, 4_900, 256)
    assert chunk % 256 == 0 and len(plan_tasks(2_000, chunk, 0)) == 4
    assert tail_chunk_size(100, 49, 8192) == 8192  # a small tail is one task
    assert len(plan_tasks(10**6, tail_chunk_size(10**6, 10_000, 256), 0)) <= 16
