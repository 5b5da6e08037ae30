"""Pricers travel to Ray workers as references to the worker's registry, not as copies of their jitted
closures (copies carry empty compilation caches: every task recompiled, 30x slower than serial)."""

import pickle

from ray import cloudpickle

from stressgrid import kernels


def test_pricers_unpickle_to_the_registered_instance():
    for pricer in {id(p): p for p in kernels.PRICERS.values()}.values():
        assert pickle.loads(pickle.dumps(pricer)) is pricer
        assert cloudpickle.loads(cloudpickle.dumps(pricer)) is pricer
