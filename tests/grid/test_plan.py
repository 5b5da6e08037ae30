import numpy as np
import pytest

from grid import auto_chunk_size, plan_tasks


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


def test_auto_chunk_size_is_bounded_and_shrinks_with_the_book():
    small, big = auto_chunk_size(40, 50), auto_chunk_size(10_000, 50)
    assert 64 <= big <= small <= 16384
    assert small & (small - 1) == 0  # a power of two
