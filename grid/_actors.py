"""Objects held in Ray actors across many calls: the pool that :class:`portfolios.ScenarioChunks` keeps
its scenario chunks in, so that a solve never gathers them in the driver."""

from __future__ import annotations

from typing import Callable, Sequence

from stressgrid.core import ConfigError, StressGridError

__all__ = ["ActorPool", "actor_pool"]


class ActorPool:
    """One Ray actor per source, each holding ``cls(source, index)``; a call goes to every actor at once
    and waits for all of them.  Needs a connected Ray session (:func:`stressgrid.cluster.connect`).

    num_cpus : CPUs each actor reserves (default ``min(1, cluster CPUs / actors)``, so that every actor
        starts at once)
    """

    def __init__(self, cls: type, sources: Sequence, num_cpus: float | None = None):
        import ray

        if num_cpus is None:
            num_cpus = min(1.0, float(ray.cluster_resources().get("CPU", 1.0)) / max(len(sources), 1))
        self._ray = ray
        actor = ray.remote(num_cpus=num_cpus)(cls)
        self.actors = [actor.remote(s, i) for i, s in enumerate(sources)]

    def call(self, method: str, *args) -> list:
        refs = [getattr(a, method).remote(*args) for a in self.actors]
        try:
            return self._ray.get(refs)
        except Exception as exc:  # one of our errors raised in an actor: raise it as it is
            cause = getattr(exc, "cause", None)
            if isinstance(cause, StressGridError):
                raise cause from None
            raise

    def close(self) -> None:
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []


def actor_pool(num_cpus: float | None = None) -> Callable[[type, Sequence], ActorPool]:
    """The ``pool`` argument of :class:`portfolios.ScenarioChunks` that holds each chunk in a Ray actor
    reserving ``num_cpus`` CPUs (default: see :class:`ActorPool`)."""
    if num_cpus is not None and not float(num_cpus) > 0:
        raise ConfigError(f"num_cpus: expected a positive number (got {num_cpus!r})")
    return lambda cls, sources: ActorPool(cls, sources, num_cpus)
