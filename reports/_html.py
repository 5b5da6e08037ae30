"""The HTML report of a run: one self-contained file (inline CSS and SVG; no script, font or URL to fetch)."""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from stressgrid.core.measures import level_label

from . import _charts
from ._charts import sig2
from ._limits import Limit, Limits, evaluate_limits
from ._reverse import probability, reverse_stress
from ._rundir import RunDir, open_run
from ._schema import SCHEMA_VERSION
from ._tables import NO_SCOPE, capacity_scopes, liquidation_groups, liquidation_positions
from ._terminal import (TERMINAL_SMALL_FAMILY, caveats, designed_families, horizon_explained, plural, stressed_var,
                        tail_warnings, view_format, worst_sensitivity)

__all__ = ["write_report", "render_report", "headline", "MONITORING_TABLES", "REPORT_SECTIONS"]

#: monitoring tables, rendered as plain tables when present
MONITORING_TABLES = ("var_backtest", "signals", "rules_fired", "rules_impact", "walk_forward", "champion_challenger",
                     "correlation_drift", "regime_view")
#: section id -> title, in page order (a section whose tables are absent is left out)
REPORT_SECTIONS = {
    "headline": "Headline",
    "breaches": "Limits and breaches",
    "risk": "Risk by scenario family",
    "scenario-pnl": "P&L per scenario",
    "distribution": "P&L distributions",
    "contributions": "Where the tail loss comes from",
    "liquidity": "Liquidity",
    "capacity": "Capacity",
    "factors": "Factor exposures",
    "reoptimisation": "Re-optimisation",
    "monitoring": "Monitoring",
    "reverse": "Reverse stress tests",
    "views": "Views by entropy pooling",
    "explained": "P&L explained at the horizon",
    "sensitivity": "Full revaluation and approximation",
    "caveats": "Caveats",
    "run": "Run",
}
_MAX_ROWS = 60

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#212121;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 28px 48px;background:#fff}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;border-bottom:2px solid #1565c0;padding-bottom:3px;margin-top:30px}
h3{font-size:14px;margin:16px 0 6px}.sub{color:#616161;font-size:13px;margin:0 0 10px}
nav{font-size:12px;margin:8px 0 4px}nav a{margin-right:10px;color:#1565c0;text-decoration:none}
.tw{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:12px;margin:6px 0 10px}
th,td{padding:3px 8px;border-bottom:1px solid #e0e0e0;text-align:right;white-space:nowrap}
th{background:#eceff1;font-weight:600}td.l,th.l{text-align:left}
tr.breach td{background:#ffebee;color:#b71c1c;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{border:1px solid #cfd8dc;border-radius:6px;padding:8px 12px;min-width:170px;max-width:340px;background:#f5f7f8}
.card .k{font-size:11px;color:#546e7a;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:19px;font-weight:600;margin:2px 0}.card .d{font-size:11px;color:#616161}
.card.bad{border-color:#e57373;background:#ffebee}.card.good{border-color:#81c784;background:#f1f8e9}
figure.chart{margin:8px 0 16px}figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#616161;margin-top:2px}
.note{font-size:12px;color:#6d4c41;background:#fff8e1;border-left:3px solid #ffb300;padding:4px 8px;margin:4px 0}
footer{font-size:11px;color:#757575;margin-top:30px}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _money(x) -> str:
    return "" if x is None or pd.isna(x) else f"{float(x) / 1e6:,.2f}m"


def _amount(x) -> str:
    """An amount that may be small (a cost): millions, thousands or units, so that 4,863 is not 0.00m."""
    if x is None or pd.isna(x):
        return ""
    x = float(x)
    return f"{x / 1e6:,.2f}m" if abs(x) >= 1e6 else f"{x / 1e3:,.1f}k" if abs(x) >= 1e3 else f"{x:,.0f}"


def _num(x, fmt: str = "{:,.2f}") -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA else fmt.format(x)


def _table(df: pd.DataFrame, fmt: dict[str, Callable] | None = None, left: tuple[str, ...] = (),
           row_class: Callable[[pd.Series], str] | None = None, max_rows: int = _MAX_ROWS) -> str:
    """An HTML table of ``df``; columns formatted by ``fmt`` (else numbers to 4 significant digits)."""
    fmt = fmt or {}
    shown = df.head(max_rows)
    cols = list(shown.columns)
    lefts = set(left) | {c for c in cols if not pd.api.types.is_numeric_dtype(shown[c]) or pd.api.types.is_bool_dtype(shown[c])}
    out = ['<div class="tw"><table><thead><tr>'] + [f'<th class="{"l" if c in lefts else ""}">{_e(c)}</th>' for c in cols] + ["</tr></thead><tbody>"]
    for _, r in shown.iterrows():
        cls = row_class(r) if row_class else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for c in cols:
            v = r[c]
            if c in fmt:
                s = fmt[c](v)
            elif isinstance(v, (list, tuple, np.ndarray)):  # a list column (list<string>)
                s = ", ".join(map(str, v))
            elif v is None or (not isinstance(v, str) and pd.isna(v)):
                s = ""
            elif isinstance(v, pd.Timestamp):
                s = str(v.date()) if v == v.normalize() else str(v)
            elif isinstance(v, (float, np.floating)):
                s = f"{v:,.4g}"
            else:
                s = str(v)
            out.append(f'<td class="{"l" if c in lefts else ""}">{_e(s)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if len(df) > max_rows:
        out.append(f'<p class="sub">first {max_rows} of {len(df)} rows; the full table is in the run directory.</p>')
    return "".join(out)


def _figure(chart_id: str, svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f'<figure class="chart" id="chart-{chart_id}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


# --- headline --------------------------------------------------------------------------------------------


def headline(run_dir: str | Path | RunDir, breaches: pd.DataFrame | None = None,
             limits: Limits | None = None) -> list[dict]:
    """The headline figures of a run, each a dict ``key, label, value (float or None), text, detail``.

    * ``stressed_var``: the largest VaR at the highest confidence level over the scenario families (the
      family whose VaR it is in ``detail``);
    * ``worst_scenario``: the largest loss of any scenario of the run;
    * ``la_cvar`` (when ``la_risk`` is present): the largest liquidity-adjusted CVaR at the highest alpha;
    * ``la_drawdown`` (when ``la_drawdown`` is present): the largest liquidity-adjusted drawdown, with the plain
      drawdown of the same path (traded at once and free) and, when another path's is larger, the largest one;
    * ``days_to_liquidate`` (when ``capacity`` or ``liquidation`` is present): of the book at its current size;
    * ``capacity`` (when ``capacity`` is present): the largest AUM multiple tested below the first multiple at
      which a book-level ``days_to_liquidate`` or ``cost_bps`` limit is breached (needs such limits;
      otherwise the days to liquidate at the largest multiple tested), shown to two significant digits
      rounded down, with a ``note`` on what a multiple below 1x means;
    * ``breaches`` (when limits were evaluated): the number of breached checks.
    """
    run = open_run(run_dir)
    rm = run.table("risk_metrics")
    ccy = run.base_currency
    out: list[dict] = []
    # over the families that are distributions: the VaR of a reverse stress test is the loss it was asked for
    top = stressed_var(rm, designed_families(run))
    if top is not None:
        value, family, a = top
        out.append(dict(key="stressed_var", label=f"Stressed VaR {level_label(a)}", value=value,
                        text=_money(value), detail=f"largest over families: {family}"))
    worst = rm[rm["metric"] == "worst"]
    if len(worst):
        w = worst.loc[worst["value"].idxmax()]
        out.append(dict(key="worst_scenario", label="Worst scenario", value=float(w["value"]), text=_money(w["value"]),
                        detail=f"{w['scenario']} ({w['family']})"))
    la = run.get("la_risk")
    if la is not None and len(la):
        top_a = la["alpha"].max()
        r = la[la["alpha"] == top_a]
        r = r.loc[r["la_cvar"].idxmax()]
        out.append(dict(key="la_cvar", label=f"LA CVaR {level_label(top_a)}", value=float(r["la_cvar"]), text=_money(r["la_cvar"]),
                        detail=f"{r['family']}; CVaR without costs {_money(r['cvar'])}"))
    dd = run.get("la_drawdown")
    if dd is not None and len(dd):
        r = dd.loc[dd["la_drawdown"].idxmax()]
        plain = dd.loc[dd["drawdown"].idxmax()]
        # the plain drawdown trades the same path at once and for free; the largest of those may be another path's
        largest = "" if plain["scenario"] == r["scenario"] and plain["family"] == r["family"] else (
            f"; the largest so traded: {_money(plain['drawdown'])}, {plain['scenario']} ({plain['family']})")
        out.append(dict(key="la_drawdown", label="LA drawdown", value=float(r["la_drawdown"]), text=_money(r["la_drawdown"]),
                        detail=f"{r['scenario']} ({r['family']}); this path traded at once and free: "
                               f"{_money(r['drawdown'])}{largest}"))
    cap = run.get("capacity")
    lq = run.get("liquidation")
    book = None
    if cap is not None:
        c = capacity_scopes(cap)
        book = c[(c["level"] == "book")].sort_values(["scope", "aum_multiple"], kind="stable")
    one = None if book is None else book[np.isclose(book["aum_multiple"], 1.0)]
    if one is not None and len(one):
        days, src = one.set_index("scope")["days_to_liquidate"].astype(float), "book at its current size"
    elif lq is not None and len(lq):
        days, src = liquidation_groups(lq, "book").set_index("scope")["days"].astype(float), "slowest position"
    else:
        days = None
    if days is not None:
        detail = src if days.index.tolist() == [NO_SCOPE] else src + "; " + ", ".join(f"{k} {v:,.1f}" for k, v in days.items())
        out.append(dict(key="days_to_liquidate", label="Days to liquidate", value=float(days.max()),
                        text=f"{days.max():,.1f}", detail=detail))
    if book is not None and len(book):
        out.append(_capacity(book, limits.limits if limits is not None else _limits_of(breaches)))
    if breaches is not None:
        n = int(breaches["breached"].sum())
        out.append(dict(key="breaches", label="Limit breaches", value=float(n), text=str(n),
                        detail=f"of {plural(len(breaches), 'check')}"))
    for item in out:
        item.setdefault("currency", ccy)
    return out


def _limits_of(breaches: pd.DataFrame | None) -> list[Limit]:
    """The book-level liquidity limits an evaluated limits table was checked against (the report of a run
    whose limits file is not given again: ``stressgrid report RUN_DIR``), one per family checked."""
    if breaches is None or not len(breaches):
        return []
    rows = breaches[(breaches["scope"] == "book") & breaches["metric"].isin(["days_to_liquidate", "cost_bps"])]
    rows = rows.drop_duplicates(["limit_name", "family"])
    return [Limit(metric=r.metric, scope="book", family=str(r.family), max=float(r.threshold), units=str(r.units),
                  name=str(r.limit_name)) for r in rows.itertuples()]


def _capacity(book: pd.DataFrame, limits: list[Limit]) -> dict:
    """Capacity from the book rows of the capacity table (with a ``scope`` column) and the limits given."""
    checks = [lim for lim in limits
              if lim.scope == "book" and lim.metric in ("days_to_liquidate", "cost_bps")]
    mults = np.sort(book["aum_multiple"].unique())
    if not checks:
        last = book[book["aum_multiple"] == mults[-1]]
        worst = last.loc[last["days_to_liquidate"].idxmax()]
        where = "" if worst["scope"] == NO_SCOPE else f", {worst['scope']}"
        return dict(key="capacity", label="Capacity", value=None, text=f"{float(worst['days_to_liquidate']):,.1f} days",
                    detail=f"to liquidate at {sig2(mults[-1])}x AUM{where} (no book liquidity limit given)")
    first_bad = np.inf
    for lim in checks:
        sel = book if lim.family == "*" else book[book["scope"] == lim.family]
        bad = sel.loc[sel[lim.metric].astype(float) > lim.max, "aum_multiple"]
        if len(bad):
            first_bad = min(first_bad, float(bad.min()))
    # capacity: the largest multiple tested below the first one at which a limit is breached
    within = mults[mults < first_bad]
    names = ", ".join(dict.fromkeys(lim.name for lim in checks))
    below = "Below 1x: the book as sized cannot be liquidated within these limits at that stress."
    if not len(within):
        return dict(key="capacity", label="Capacity", value=0.0, text=f"below {sig2(mults[0])}x",
                    detail=f"{names}: breached at the smallest multiple tested", note=below)
    return dict(key="capacity", label="Capacity", value=float(within[-1]), text=f"{sig2(within[-1])}x AUM",
                detail=f"largest multiple tested within {names}",
                note=below if within[-1] < 1.0 else "1x is the book as sized; below 1x, it could not be liquidated within these limits.")


# --- sections --------------------------------------------------------------------------------------------


def _sec_headline(run: RunDir, breaches, limits) -> str:
    cards = []
    for h in headline(run, breaches, limits):
        cls = " bad" if h["key"] == "breaches" and h["value"] else (" good" if h["key"] == "breaches" else "")
        note = f'<div class="d">{_e(h["note"])}</div>' if h.get("note") else ""
        cards.append(f'<div class="card{cls}" id="headline-{h["key"]}"><div class="k">{_e(h["label"])}</div>'
                     f'<div class="v">{_e(h["text"])}</div><div class="d">{_e(h["detail"])}</div>{note}</div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _risk_table(run: RunDir) -> str:
    rm = run.table("risk_metrics")
    rows = []
    for fam, g in rm.groupby("family", sort=False):
        row = {"family": fam, "scenarios": int(g.loc[g.metric == "scenarios", "value"].iloc[0]) if (g.metric == "scenarios").any() else None}
        for a in run.confidences:
            for m, shown in (("var", "VaR"), ("cvar", "CVaR")):
                v = g.loc[(g.metric == m) & np.isclose(g.confidence.astype(float), a), "value"]
                row[f"{shown} {level_label(a)}"] = float(v.iloc[0]) if len(v) else np.nan
        w = g[g.metric == "worst"]
        row["worst scenario"] = str(w["scenario"].iloc[0]) if len(w) else ""
        row["worst loss"] = float(w["value"].iloc[0]) if len(w) else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    fmt = {c: _money for c in df.columns if c.startswith(("VaR", "CVaR")) or c == "worst loss"}
    return (f'<p class="sub">VaR and CVaR (Rockafellar and Uryasev 2002) per scenario family, {_e(run.base_currency)}, '
            'losses positive.</p>' + _table(df, fmt, left=("family", "worst scenario")))


def _sec_breaches(run: RunDir, breaches: pd.DataFrame | None) -> str:
    if breaches is None:
        return ""
    from ._terminal import _fmt_limit_value

    df = breaches.sort_values("breached", ascending=False, kind="stable")
    view = pd.DataFrame({
        "limit": df["limit_name"], "family": df["family"].fillna(""), "group": df["group_name"],
        "value": [_fmt_limit_value(v, u) for v, u in zip(df["value"], df["units"])],
        "limit value": [_fmt_limit_value(v, u) for v, u in zip(df["threshold"], df["units"])],
        "headroom": [_fmt_limit_value(v, u) for v, u in zip(df["headroom"], df["units"])],
        "status": np.where(df["breached"], "BREACH", "ok"),
    })
    n = int(breaches["breached"].sum())
    k = len(breaches)
    lead = (f'<p class="note">{n} of {plural(k, "check")} breached.</p>' if n
            else f'<p class="sub">{"All " if k > 1 else ""}{plural(k, "check")} within {"their limits" if k > 1 else "its limit"}.</p>')
    return lead + _table(view, left=tuple(view.columns[:3]) + ("status",),
                         row_class=lambda r: "breach" if r["status"] == "BREACH" else "", max_rows=200)


def _sec_scenario_pnl(run: RunDir, chart: Callable[[str], str | None]) -> str:
    d = _charts.scenario_bar_data(run)
    small = d["family"].nunique()
    drawn = list(dict.fromkeys(d["family"]))
    cap = (f"Book P&L of every scenario in the {plural(small, 'family')} of at most {_charts.SMALL_FAMILY} scenarios"
           if len(d) and (run.family_sizes().reindex(drawn) <= _charts.SMALL_FAMILY).all()
           else "The 20 worst scenarios of the run")
    out = _figure("scenario-pnl", chart("chart_scenario_pnl"), f"{cap} (millions {run.base_currency}; gains right, losses left).")
    # only the rows of the scenarios drawn (of the small families, or the worst ones' parts)
    sel = run.table("breakdown", columns=["scenario", "group_name", "pnl"], families=drawn,
                    where={"level": "asset_class", "scenario": list(d["scenario"])}) if len(d) else pd.DataFrame()
    if len(sel):
        wide = sel.pivot_table(index="scenario", columns="group_name", values="pnl", sort=False).reindex(d["scenario"])
        wide["total"] = wide.sum(axis=1)
        wide = wide.reset_index()
        out += f"<h3>By asset class ({_e(run.base_currency)})</h3>" + _table(wide, {c: _money for c in wide.columns[1:]}, left=("scenario",))
    return out


def _sec_distribution(run: RunDir, chart: Callable[[str], str | None]) -> str:
    return _figure("distribution", chart("chart_distributions"),
                   "Weighted P&L distribution of each simulated family; dashed: -VaR, solid: -CVaR (losses to the left).")


def _sec_contributions(run: RunDir, chart: Callable[[str], str | None]) -> str:
    a = max(run.confidences)
    out = _figure("contributions", chart("chart_contributions"),
                  f"Euler contributions to CVaR {level_label(a)} (Tasche 1999): the contributions of a family add up to its CVaR; "
                  "negative: a hedge.")
    ct = run.table("contributions")
    ct = ct[np.isclose(ct["confidence"], a) & ct["level"].isin(["asset_class", "sleeve"])]
    for level in ("asset_class", "sleeve"):
        wide = ct[ct["level"] == level].pivot_table(index="family", columns="group_name", values="cvar_contribution", sort=False)
        wide = wide.reindex([f for f in run.families if f in wide.index])
        wide["CVaR"] = wide.sum(axis=1)
        wide = wide.reset_index()
        out += (f"<h3>CVaR {level_label(a)} contribution by {level.replace('_', ' ')} ({_e(run.base_currency)})</h3>"
                + _table(wide, {c: _money for c in wide.columns[1:]}, left=("family",)))
    return out


def _sec_liquidity(run: RunDir, chart: Callable[[str], str | None]) -> str:
    out = ""
    la = run.get("la_risk")
    if la is not None:
        out += (f"<h3>Liquidity-adjusted VaR and CVaR (millions {_e(run.base_currency)}, losses positive)</h3>" + _table(
            la, {"alpha": level_label, **{c: _money for c in ("var", "cvar", "la_var", "la_cvar", "exit_cost_mean", "exit_cost_tail")}},
            left=("family",)))
    dd = run.get("la_drawdown")
    if dd is not None:
        top = dd.sort_values("la_drawdown", ascending=False).groupby("family", sort=False).head(3)
        out += (f"<h3>Largest liquidity-adjusted drawdowns (3 per family; millions {_e(run.base_currency)})</h3>"
                + _table(top, {**{c: _money for c in ("drawdown", "la_drawdown", "static_drawdown", "unwind_cost", "pending_cost")},
                               "holding_end": lambda v: _num(v, "{:.1%}")}, left=("family", "scenario")))
    out += _figure("drawdown-paths", chart("chart_drawdown_paths"),
                   f"Cumulative P&L of the worst scenarios per family (millions {run.base_currency}); dashed: net of unwind costs.")
    lq = run.get("liquidation")
    if lq is not None:
        g = liquidation_groups(lq, "asset_class").rename(columns={"group_name": "asset class"})
        out += ("<h3>Liquidation by regime and asset class</h3>"
                + _table(g, {"cost": _money, "cost_bps": lambda v: _num(v, "{:,.1f}")}, left=("scope", "asset class")))
        slow = liquidation_positions(lq).sort_values("days", ascending=False, kind="stable").head(10)
        out += "<h3>Slowest positions to liquidate</h3>" + _table(
            slow, {"cost": _money, "cost_bps": lambda v: _num(v, "{:,.1f}")}, left=("scope", "position_id", "asset_class", "sleeve"))
    return out


def _sec_capacity(run: RunDir, chart: Callable[[str], str | None]) -> str:
    cap = run.get("capacity")
    if cap is None:
        return ""
    out = _figure("capacity", chart("chart_capacity"), "The book scaled by the AUM multiple (dotted line: current size).")
    book = cap[cap["level"] == "book"].drop(columns=["level", "group_name"])
    money_cols = [c for c in ("nav", "cost", "cvar", "la_cvar", "drawdown", "la_drawdown") if c in book.columns]
    pct = {c: (lambda v: _num(v, "{:.2%}")) for c in ("la_cvar_nav", "la_drawdown_nav") if c in book.columns}
    return out + "<h3>Book</h3>" + _table(book, {**{c: _money for c in money_cols}, **pct}, left=("scope",))


def _sec_factors(run: RunDir) -> str:
    fe = run.get("factor_exposures")
    if fe is None or fe.empty:
        return ""
    out = (f"<p class='sub'>Exposure of each sleeve and asset class (P&L over NAV per unit move of the factor) and of "
           f"each position (per unit of its exposure), fitted on the {_e(str(fe['family'].iloc[0]))} family's "
           f"{int(fe['n_observations'].iloc[0]):,} observations; Lasso with its penalty chosen by time-series "
           "cross-validation unless given, least squares with t-statistics where the windows do not overlap.</p>")
    for level in ("sleeve", "asset_class", "position"):
        g = fe[fe["level"] == level]
        if g.empty:
            continue
        wide = g.pivot_table(index=["name", "method"], columns="factor", values="loading", sort=False).reset_index()
        r2 = g.drop_duplicates(["name", "method"]).set_index(["name", "method"])["r2"]
        wide["r2"] = [r2.loc[(n, m)] for n, m in zip(wide["name"], wide["method"])]
        if level == "position":
            wide = wide[wide["method"] == "lasso"]
        fmt = {c: (lambda v: _num(v, "{:.3f}")) for c in wide.columns if c not in ("name", "method")}
        out += f"<h3>By {_e(level.replace('_', ' '))}{' (Lasso)' if level == 'position' else ''}</h3>" + _table(
            wide, fmt, left=("name", "method"))
    return out


def _sec_reoptimisation(run: RunDir, chart: Callable[[str], str | None]) -> str:
    ro = run.get("reoptimisation")
    out = ""
    if ro is not None:
        money_cols = [c for c in ro.columns if c.startswith(("cvar", "var", "base_cvar", "base_var")) or c == "cost"]
        share = {c: (lambda v: _num(v, "{:.2%}")) for c in ro.columns if c.startswith("expected_return")}  # of NAV
        out += "<h3>Tail risk before and after</h3>" + _table(
            ro, {**{c: _money for c in money_cols}, **share, "turnover": lambda v: _num(v, "{:.1%}")},
            left=("family", "method", "case_name", "status", "message"))
    ex = run.get("reoptimisation_exposures")
    if ex is not None and not ex.empty:
        shown = ex[ex["method"].isin(["factor_target", "factor_risk_parity"])]
        if shown.empty:
            shown = ex
        fmt = {c: (lambda v: _num(v, "{:.3f}")) for c in ("target", "exposure_before", "exposure_after")}
        fmt.update({c: (lambda v: _num(v, "{:.1%}")) for c in ("risk_budget", "risk_share_before", "risk_share_after")})
        out += ("<h3>Factor exposures: target and achieved</h3><p class='sub'>The book's exposure to each factor "
                "(sum of weight x loading) before and after; the risk shares split the systematic variance on the "
                "family's scenarios.</p>" + _table(shown, fmt, left=("family", "method", "case_name", "factor")))
    out += _figure("reoptimisation", chart("chart_reoptimisation"),
                   "Weights before (grey) and after (blue) re-optimisation, positions with the largest trades.")
    rw = run.get("reoptimisation_weights")
    if rw is not None and "risk_contribution" in rw.columns and rw["risk_contribution"].notna().any():
        # risk parity and HRP: each sleeve's budget and its share of the optimised risk after the move
        keys = ["family", "method"] + (["case_name"] if "case_name" in rw.columns else []) + ["sleeve"]
        g = rw[rw["risk_contribution"].notna()].groupby(keys, sort=False, observed=True)
        by = g[["risk_budget", "risk_contribution"]].sum(min_count=1).reset_index()
        share = {c: (lambda v: _num(v, "{:.1%}")) for c in ("risk_budget", "risk_contribution")}
        out += "<h3>Risk budgets and contributions by sleeve</h3>" + _table(by, share, left=tuple(keys))
    return out


def _sec_monitoring(run: RunDir) -> str:
    out = ""
    for name in MONITORING_TABLES:
        df = run.get(name)
        if df is None:
            continue
        note = ""
        if name == "correlation_drift" and {"date", "forecaster", "rolling_error"} <= set(df.columns):
            # the latest step of each forecaster; the table has every step
            df = df.sort_values("date").groupby("forecaster", sort=False).tail(1)
            note = ("<p class='sub'>The latest walk-forward step of each forecaster: the root-mean-square error of "
                    "its predicted pairwise correlations, and its mean over the last steps (a limit on "
                    "correlation_drift checks the champion's). correlation_drift.parquet has every step.</p>")
        elif name == "regime_view":
            note = ("<p class='sub'>The equity-bond allocation at the target volatility: equal risk contribution "
                    "(erc) and minimum variance (minvar) weights, as fractions of NAV, under the historical "
                    "correlation and the forecaster's predictions on risk-off and risk-on dates.</p>")
        fmt = None
        if name == "rules_impact":
            note = (f"<p class='sub'>Gross exposure and costs in {_e(run.base_currency)} (m: millions, k: thousands); the "
                    "daily P&L's annualised vol, VaR and CVaR over the history as % of NAV (the book's gross without "
                    "one).</p>")
            fmt = {**{c: _amount for c in ("gross_before", "gross_after", "trade_cost", "premium", "carry_cost")},
                   **{c: (lambda v: _num(v, "{:.2%}")) for c in ("vol_before", "vol_after", "var_before", "var_after",
                                                                 "cvar_before", "cvar_after")},
                   "confidence": lambda v: "" if pd.isna(v) else level_label(v)}
        out += f'<h3 id="monitoring-{name}">{_e(name.replace("_", " "))}</h3>' + note + _table(df, fmt)
    return out


def _sec_sensitivity(run: RunDir) -> str:
    if not run.has("sensitivity"):
        return ""
    found = worst_sensitivity(run, [f for f, n in run.family_sizes().items() if n <= TERMINAL_SMALL_FAMILY])
    if found is None:
        return ""
    worst, rows = found
    return (f"<p class='sub'>Scenario {_e(worst)}, by instrument type ({_e(run.base_currency)}).</p>"
            + _table(rows, {c: _money for c in ("pnl_full", "pnl_sensitivity", "error")}, left=("type",)))


def _sec_explained(run: RunDir) -> str:
    ex = horizon_explained(run)
    if ex is None:
        return ""
    return (f"<p class='sub'>The worst scenario of each family revalued at its horizon ({_e(run.base_currency)}): time is "
            "the P&L at unchanged levels (decay, carry, roll-down, coupons and premium received, expiries), market the "
            "scenario's moves on today's book, cross the rest. The scenarios table has the split for every scenario.</p>"
            + _table(ex, {c: _money for c in ("pnl", "pnl_time", "pnl_market", "pnl_cross")}, left=("family", "scenario")))


def _sec_reverse(run: RunDir) -> str:
    rev = reverse_stress(run)
    if rev is None or not len(rev):
        return ""
    shown = rev.assign(converged=rev["converged"].map({True: "yes", False: "no: not a solution"}),
                       starts_agree=rev["starts_agree"].map({True: "yes", False: "no"}))
    return (f"<p class='sub'>The most plausible factor moves that cost the book each loss, and the worst loss within "
            "each plausibility bound, on full revaluation. Distance is the Mahalanobis distance of the move under "
            "the family's covariance of the horizon move; the tail probability is that of the half-space beyond the "
            "scenario (exact for a linear book). Largest moves: the factors with the largest shares of the distance "
            f"({_e(run.base_currency)}).</p>"
            + _table(shown, {"target_loss": _money, "loss": _money, "distance": _num,
                             "tail_probability": probability}, left=("family", "scenario", "main_moves"))
            + _figure("reverse", _charts.chart_reverse(run),
                      "Each solution's factor moves in standard deviations of the horizon move: dark bars are the "
                      "factors searched over, light ones move by their conditional expectation given them."))


def _sec_views(run: RunDir) -> str:
    views = run.get("views")
    if views is None or not len(views):
        return ""
    fmts = [view_format(str(st)) for st in views["statistic"]]  # each view in its units (bp, %, currency)
    shown = views[["family", "view", "prior", "posterior", "holds", "scenarios", "effective_scenarios",
                   "relative_entropy"]].assign(
        holds=views["holds"].map({True: "yes", False: "no"}),
        prior=[f(v) for f, v in zip(fmts, views["prior"])], posterior=[f(v) for f, v in zip(fmts, views["posterior"])])
    return ("<p class='sub'>Families whose scenario probabilities were set by entropy pooling: the probabilities "
            "closest to the prior (least relative entropy) that meet every view. Every figure of these families "
            "(VaR, CVaR, contributions, drawdowns, re-optimisation) uses them; the effective number of scenarios "
            "is exp of the probabilities' entropy (the family's size when they are equal). Factor moves are in "
            f"the factor's convention (a rate's, spread's or basis's in bp, another factor's in %), P&L figures in "
            f"{_e(run.base_currency)}.</p>"
            + _table(shown, {"effective_scenarios": lambda x: f"{x:,.0f}", "relative_entropy": lambda x: f"{x:.3f}"},
                     left=("family", "view")))


def _sec_caveats(run: RunDir) -> str:
    lines = caveats(run) + tail_warnings(run)
    return "".join(f'<p class="note">{_e(x)}</p>' for x in lines)


def _sec_run(run: RunDir) -> str:
    m = run.manifest
    b = m.get("batch", {})
    counts = m.get("counts", {})
    hist = m.get("history", {})
    items = [
        ("batch", b.get("name")), ("batch SHA-256", b.get("sha256")), ("book", b.get("book")),
        ("as of", m.get("as_of")), ("base currency", m.get("base_currency")),
        ("history", f"{hist.get('source')} {hist.get('first')} .. {hist.get('last')}"),
        ("root seed", m.get("seeds", {}).get("root")),
        ("started", m.get("started")), ("finished", m.get("finished")),
        ("scenarios x positions", f"{counts.get('scenarios')} x {counts.get('positions')} ({counts.get('priced')} priced)"),
        ("tasks", f"{counts.get('tasks')} of {plural(counts.get('chunk_size'), 'scenario')}, {plural(counts.get('workers'), 'worker')}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())),
        ("timings (s)", ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in m.get("timings_seconds", {}).items())),
        ("schema version", m.get("schema_version")),
    ]
    df = pd.DataFrame(items, columns=["", "value"])
    out = _table(df, left=("", "value"))
    sw = run.get("sweeps")
    if sw is not None:
        out += "<h3>Parameter sweeps</h3>" + _table(sw.drop(columns=["value_number"], errors="ignore"))
    return out


#: the charts a second process draws while this one draws the others and writes the tables: the demo's
#: P&L distributions and capacity curves take about as long as its other four charts (1.7 and 0.4 s against
#: 3.1 s), and the second process spends about 1.6 s starting
CHILD_CHARTS = ("chart_distributions", "chart_capacity")
#: the fewest panels of the distributions chart (families of more than ``SMALL_FAMILY`` scenarios) for which
#: a second process is started: below, the charts are quicker than its start (the demo has 11; the test
#: runs' reports, with one, took 13% longer with it)
CHILD_MIN_PANELS = 6


class _Charts:
    """``charts(name)``: the SVG of chart ``name`` of the run (``reports._charts``), drawn here, or by a second
    process started at once for :data:`CHILD_CHARTS` when this machine has two or more CPUs, the run is a
    folder and its distributions chart has at least :data:`CHILD_MIN_PANELS` panels.  Whatever goes wrong
    in the second process, the chart is drawn here instead."""

    def __init__(self, run: RunDir):
        self.run = run
        self._proc = None
        self._drawn: dict | None = None
        self._here: dict = {}
        if len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)) < 2:
            return
        if not Path(run.path).is_dir() or os.environ.get("STRESSGRID_REPORT_PROCESSES") == "1":
            return
        if int((run.family_sizes() > _charts.SMALL_FAMILY).sum()) < CHILD_MIN_PANELS:
            return
        import subprocess
        import sys

        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "stressgrid.reports._chart_child", str(run.path), *CHILD_CHARTS],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                          text=True, encoding="utf-8")
        except OSError:
            self._proc = None

    def draw_here(self) -> None:
        """With a second process at work, draw the other charts now, before anything waits for its charts."""
        if self._proc is not None:
            self._here = {n: getattr(_charts, n)(self.run) for n in _charts.IN_CHILD if n not in CHILD_CHARTS}

    def __call__(self, name: str) -> str | None:
        if name in self._here:
            return self._here[name]
        if self._proc is not None and name in CHILD_CHARTS:
            if self._drawn is None:
                self._drawn = self._collect()
            if name in self._drawn:
                return self._drawn[name]
        return getattr(_charts, name)(self.run)

    def _collect(self) -> dict:
        import json
        import subprocess

        try:
            out, _ = self._proc.communicate(timeout=CHILD_TIMEOUT_SECONDS)
            drawn = json.loads(out) if self._proc.returncode == 0 else {}
        except (subprocess.TimeoutExpired, ValueError):
            self.close()
            return {}
        if not isinstance(drawn, dict):
            return {}
        return {k: v for k, v in drawn.items() if k in CHILD_CHARTS and (v is None or isinstance(v, str))}

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


#: how long the report waits for the second process's charts before drawing them itself
CHILD_TIMEOUT_SECONDS = 300


def render_report(run_dir: str | Path | RunDir, breaches: pd.DataFrame | None = None,
                  limits: Limits | None = None) -> str:
    """The report of a run as one HTML string (see :func:`write_report`)."""
    run = open_run(run_dir)
    charts = _Charts(run)
    sections = {
        "headline": lambda: _sec_headline(run, breaches, limits),
        "breaches": lambda: _sec_breaches(run, breaches),
        "risk": lambda: _risk_table(run),
        "scenario-pnl": lambda: _sec_scenario_pnl(run, charts),
        "distribution": lambda: _sec_distribution(run, charts),
        "contributions": lambda: _sec_contributions(run, charts),
        "liquidity": lambda: _sec_liquidity(run, charts),
        "capacity": lambda: _sec_capacity(run, charts),
        "factors": lambda: _sec_factors(run),
        "reoptimisation": lambda: _sec_reoptimisation(run, charts),
        "monitoring": lambda: _sec_monitoring(run),
        "reverse": lambda: _sec_reverse(run),
        "views": lambda: _sec_views(run),
        "explained": lambda: _sec_explained(run),
        "sensitivity": lambda: _sec_sensitivity(run),
        "caveats": lambda: _sec_caveats(run),
        "run": lambda: _sec_run(run),
    }
    body, nav = [], []
    try:
        charts.draw_here()
        for sid, title in REPORT_SECTIONS.items():
            content = sections[sid]()
            if not content:
                continue
            nav.append(f'<a href="#{sid}">{_e(title)}</a>')
            body.append(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>')
    finally:
        charts.close()
    m = run.manifest
    title = f"stressgrid report: {run.batch_name}"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>{_e(title)}</h1><p class=\"sub\">as of {_e(m.get('as_of'))}, base currency {_e(run.base_currency)}, "
        f"{_e(plural(m.get('counts', {}).get('scenarios'), 'scenario'))}, run {_e(m.get('started', ''))[:19]}; losses positive "
        "in every risk figure</p>"
        f"<nav>{''.join(nav)}</nav>{''.join(body)}"
        f"<footer>Written by stressgrid {_e(m.get('versions', {}).get('stressgrid', ''))} on {now} from {_e(run.path.name)}/ "
        f"(results schema version {SCHEMA_VERSION}).</footer></main></body></html>\n"
    )


def write_report(run_dir: str | Path | RunDir, out: str | Path | None = None, limits: Limits | None = None,
                 breaches: pd.DataFrame | None = None) -> Path:
    """Write the HTML report of a run: one file that opens offline (inline CSS and SVG charts).

    Sections (each only when the run has its tables): headline figures and VaR/CVaR per family, limits
    and breaches, P&L per scenario, P&L distributions with VaR and CVaR marked, CVaR contributions by
    asset class and sleeve, liquidity (liquidity-adjusted risk, drawdown paths, liquidation), capacity
    curve, re-optimisation (risk before and after, weights), monitoring tables, full revaluation against
    the approximation, caveats and the run's provenance.

    Parameters
    ----------
    run_dir : a run directory (or :class:`reports.RunDir`)
    out : the HTML file (default ``run_dir/report.html``)
    limits : evaluated on the run when given (and ``breaches`` is not)
    breaches : an evaluated limits table (:func:`reports.evaluate_limits`); default: ``limits`` evaluated,
        else the run's ``breaches.parquet`` when present

    Returns
    -------
    The path of the report.
    """
    run = open_run(run_dir)
    if breaches is None and limits is not None:
        breaches = evaluate_limits(run, limits)
    if breaches is None and run.has("breaches"):
        breaches = run.table("breaches")
    text = render_report(run, breaches, limits)
    path = Path(out) if out is not None else run.path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
