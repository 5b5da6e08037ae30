"""The caveats say who held a factor flat: the batch's market.flat, or the default proxies' rule."""

import pandas as pd

from stressgrid import reports
from stressgrid.core.sources import DEFAULT_MAP


def test_flat_factors_are_split_by_who_held_them(linear_run):
    path = linear_run / "coverage.parquet"
    cov = pd.read_parquet(path)
    a, b = cov.index[:2]
    cov.loc[a, ["source", "detail"]] = ["flat", "no data for it in our history"]
    # a reason as the default proxies write it (core.sources.default_proxies)
    cov.loc[b, ["source", "detail"]] = ["flat", DEFAULT_MAP + "a futures basis is held at its level"]
    cov.to_parquet(path)
    said = [c for c in reports.caveats(linear_run) if "held flat" in c]
    assert said == [
        f"1 factor is held flat on purpose (market.flat; each reason is in the coverage table): {cov.loc[a, 'factor']}.",
        f"1 factor is held flat by the default proxies' rule (default_proxies; each reason is in the coverage table): "
        f"{cov.loc[b, 'factor']}."]
