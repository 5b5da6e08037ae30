"""The crisis library: named events, their windows and the public facts that calibrate them.

Windows of the events in the reference file of public crisis facts
(``shared/reference/crisis-facts.md``) are its close-to-close S&P 500 dates (^GSPC daily closes), and
their calibration figures are its figures, each with its public series named:

* S&P 500: ^GSPC daily closes; calibrated shock of ``EQ.SPX`` = ``log(end close / start close)``;
* VIX: Cboe VIX daily closes; the facts give the closing *high* in the window (not a start level), so
  the calibrated shock moves ``VOL.SPX.ATM`` (VIX / 100) from the current level to that high;
* US 10y: FRED DGS10, a constant-maturity *par* yield; its change is used as the change of the 10y zero
  yield ``IR.USD.10Y`` (for a parallel-ish move the par and zero 10y changes differ by a few basis
  points; stated here as an approximation).

A figure is used only where the bundled history lacks the factor in the window; where both exist the
tests check that they agree (S&P 500 closes match to the cent).

The other events (1998, 2013, 2015, 2018) are not in the facts file; their windows are the extremes of
the bundled history itself (named in each ``source``), and they are replayed from data only.  The 1987
crash is not in the library: the bundled history starts in 1990 and the facts file has no 1987 figures,
so it could be neither replayed nor calibrated.  Users add it (or anything else) as a custom event
with explicit ``overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

__all__ = ["CrisisEvent", "CrisisFacts", "CRISIS_LIBRARY", "FACTS_SOURCE"]

FACTS_SOURCE = "shared/reference/crisis-facts.md: S&P 500 ^GSPC closes, Cboe VIX closes, FRED DGS10"


@dataclass(frozen=True)
class CrisisFacts:
    """Public figures of one event (``None`` where the facts file gives none).

    Attributes
    ----------
    spx : (start close, end close) of the S&P 500, index points (^GSPC)
    vix_high : closing high of the VIX in the window, index points (Cboe VIX)
    us10y : (start, end) of the US 10y Treasury yield, percent (FRED DGS10)
    note : caveats of the figures
    """

    spx: tuple[float, float] | None = None
    vix_high: float | None = None
    us10y: tuple[float, float] | None = None
    note: str = ""

    def shocks(self, levels: Mapping[str, float]) -> dict[str, float]:
        """Calibrated shocks in factor conventions.

        ``levels`` holds the current level of ``VOL.SPX.ATM`` (needed for the VIX figure, which is a
        level); without it the VIX figure is skipped.
        """
        out: dict[str, float] = {}
        if self.spx is not None:
            out["EQ.SPX"] = float(np.log(self.spx[1] / self.spx[0]))
        if self.us10y is not None:
            out["IR.USD.10Y"] = (self.us10y[1] - self.us10y[0]) / 100.0
        if self.vix_high is not None and "VOL.SPX.ATM" in levels:
            out["VOL.SPX.ATM"] = self.vix_high / 100.0 - float(levels["VOL.SPX.ATM"])
        return out

    @property
    def factors(self) -> list[str]:
        return [f for f, v in (("EQ.SPX", self.spx), ("IR.USD.10Y", self.us10y), ("VOL.SPX.ATM", self.vix_high)) if v is not None]


@dataclass(frozen=True)
class CrisisEvent:
    """A named window of history, optionally with public facts and explicit overrides.

    ``overrides`` are shocks ``{factor: shock}`` in factor conventions that win over data and facts.
    """

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    description: str
    source: str
    facts: CrisisFacts | None = None
    overrides: Mapping[str, float] = field(default_factory=dict)


def _ev(name: str, start: str, end: str, description: str, source: str, facts: CrisisFacts | None = None) -> CrisisEvent:
    return CrisisEvent(name, pd.Timestamp(start), pd.Timestamp(end), description, source, facts)


_FACTS = "S&P 500 ^GSPC closes, crisis-facts reference"
_DATA = "bundled history (EQ.SPX skfolio/^GSPC closes; IR.USD.10Y US Treasury)"
CRISIS_LIBRARY: dict[str, CrisisEvent] = {
    e.name: e
    for e in [
        _ev("ltcm_1998", "1998-07-17", "1998-08-31",
            "Russian default and LTCM: S&P 500 peak to low in the bundled history, Jul-Oct 1998 (-19.3%)",
            _DATA + ": EQ.SPX high 1998-07-17, low 1998-08-31"),
        _ev("gfc_2008", "2007-10-09", "2009-03-09", "Global financial crisis, S&P 500 peak to trough (-56.8%)", _FACTS,
            CrisisFacts(spx=(1565.15, 676.53), vix_high=80.86, us10y=(4.67, 2.89),
                        note="VIX closing high 80.86 on 2008-11-20")),
        _ev("lehman_2008", "2008-09-12", "2008-11-20", "Lehman default to the VIX closing high of 80.86", _FACTS,
            CrisisFacts(vix_high=80.86, note="VIX closing high 80.86 on 2008-11-20, the window's end")),
        _ev("euro_debt_2011", "2011-07-22", "2011-08-08", "Euro debt crisis and US downgrade, sharpest leg (-16.8%)", _FACTS,
            CrisisFacts(vix_high=48.00, note="VIX closing high 48.00 on 2011-08-08, the window's end")),
        _ev("euro_debt_2011_full", "2011-04-29", "2011-10-03", "Euro debt crisis, S&P 500 peak to trough (-19.4%)", _FACTS,
            CrisisFacts(spx=(1363.61, 1099.23), vix_high=48.00, us10y=(3.32, 1.80),
                        note="VIX closing high 48.00 on 2011-08-08")),
        _ev("taper_2013", "2013-05-01", "2013-09-05",
            "Taper tantrum: 10y Treasury zero yield low to high in the bundled history, May-Sep 2013 (+137bp)",
            _DATA + ": IR.USD.10Y low 2013-05-01, high 2013-09-05"),
        _ev("cny_2015", "2015-07-20", "2015-08-25",
            "CNY devaluation and the August 2015 sell-off: S&P 500 peak to trough in the bundled history (-12.2%)",
            _DATA + ": EQ.SPX high 2015-07-20, low 2015-08-25"),
        _ev("vol_spike_2018", "2018-01-26", "2018-02-08",
            "February 2018 volatility spike: S&P 500 peak to trough in the bundled history (-10.2%)",
            _DATA + ": EQ.SPX high 2018-01-26, low 2018-02-08"),
        _ev("covid_2020", "2020-02-19", "2020-03-23", "COVID-19 crash, S&P 500 peak to trough (-33.9%)", _FACTS,
            CrisisFacts(spx=(3386.15, 2237.40), vix_high=82.69, us10y=(1.56, 0.76),
                        note="VIX closing high 82.69 on 2020-03-16")),
        _ev("inflation_2022", "2022-01-03", "2022-10-12", "Inflation and rate hikes, S&P 500 peak to trough (-25.4%)", _FACTS,
            CrisisFacts(spx=(4796.56, 3577.03), vix_high=36.45, us10y=(1.63, 3.91),
                        note="VIX closing high 36.45 on 2022-03-07")),
        _ev("tariff_2025", "2025-04-02", "2025-04-08", "April 2025 tariff shock (-12.1%)", _FACTS,
            CrisisFacts(spx=(5670.97, 4982.77), vix_high=52.3, us10y=(4.20, 4.26),
                        note="VIX about 52.3 on 2025-04-08 (close not confirmed from the exchange; intraday 60.13 on 2025-04-07)")),
    ]
}
