"""Portfolio re-optimisation under stress (estimator-style optimisers)."""
