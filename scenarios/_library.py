"""The crisis library: named events and their windows.

Windows are close-to-close dates of the S&P 500 (^GSPC daily closes) as recorded in the project's
reference file of public crisis facts (`shared/reference/crisis-facts.md`), except where a note names
another public source.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["CrisisEvent", "CRISIS_LIBRARY"]


@dataclass(frozen=True)
class CrisisEvent:
    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    description: str
    source: str


def _ev(name: str, start: str, end: str, description: str, source: str) -> CrisisEvent:
    return CrisisEvent(name, pd.Timestamp(start), pd.Timestamp(end), description, source)


_FACTS = "S&P 500 ^GSPC closes, crisis-facts reference"
CRISIS_LIBRARY: dict[str, CrisisEvent] = {
    e.name: e
    for e in [
        _ev("gfc_2008", "2007-10-09", "2009-03-09", "Global financial crisis, S&P 500 peak to trough (-56.8%)", _FACTS),
        _ev("lehman_2008", "2008-09-12", "2008-11-20", "Lehman default to the VIX closing high of 80.86", _FACTS),
        _ev("euro_debt_2011", "2011-07-22", "2011-08-08", "Euro debt crisis and US downgrade, sharpest leg (-16.8%)", _FACTS),
        _ev("euro_debt_2011_full", "2011-04-29", "2011-10-03", "Euro debt crisis, S&P 500 peak to trough (-19.4%)", _FACTS),
        _ev("covid_2020", "2020-02-19", "2020-03-23", "COVID-19 crash, S&P 500 peak to trough (-33.9%)", _FACTS),
        _ev("inflation_2022", "2022-01-03", "2022-10-12", "Inflation and rate hikes, S&P 500 peak to trough (-25.4%)", _FACTS),
        _ev("tariff_2025", "2025-04-02", "2025-04-08", "April 2025 tariff shock (-12.1%)", _FACTS),
    ]
}
