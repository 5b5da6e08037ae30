"""The terminal summary of a run directory (rich tables), and its breaches."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from stressgrid.core.measures import level_label
from stressgrid.core.sources import DEFAULT_MAP

from ._reverse import probability, reverse_stress
from ._rundir import RunDir, open_run

__all__ = ["print_summary", "print_breaches", "money", "plural", "worst_sensitivity", "horizon_explained", "TERMINAL_SMALL_FAMILY",
           "tail_warnings", "implausible_warning", "garch_warning", "thin_tail_warning"]

#: a family with at most this many scenarios gets its scenarios' P&L by asset class in the terminal summary
TERMINAL_SMALL_FAMILY = 12


def _esc(x) -> str:
    """User text (family names like ``mc[multiplier=2]``, scenario names, paths) shown as written, not as
    rich markup."""
    from rich.markup import escape

    return escape(str(x))

def plural(n, word: str, many: str | None = None) -> str:
    """``n`` and the noun agreeing with it: ``1 family``, ``2 families``, ``0 checks`` (``many``: the plural,
    default ``word`` + s, or -ies after a consonant and y)."""
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
    return f"{n} {word if n == 1 else many}"


def money(x: float) -> str:
    """An amount in millions, e.g. ``12.35m`` (base currency)."""
    return f"{x / 1e6:,.2f}m"


def _shorten(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more (manifest.json)" if len(items) > n else "")


def terminal_console(quiet: bool = False):
    """The console the commands print to: the terminal's width, or for output to a file or a pipe the width
    ``COLUMNS`` gives, else 140; nothing but errors with ``quiet``."""
    from rich.console import Console

    console = Console(quiet=quiet, highlight=False)
    if not console.is_terminal:  # output to a file or a pipe: the width COLUMNS asks for, else 140
        cols = os.environ.get("COLUMNS", "")
        console = Console(quiet=quiet, highlight=False, width=int(cols) if cols.isdigit() and int(cols) >= 40 else 140)
    return console


def _console(console):
    return console if console is not None else terminal_console()


def print_summary(run_dir: str | Path | RunDir, console=None) -> None:
    """Print the summary of a run: risk per family, scenario P&L by asset class for the small families,
    full revaluation against the delta-gamma-vega approximation in the worst scenario of the first small
    family, every caveat (unpriced positions, factors held flat or filled), and where the time went.

    Of the per-scenario tables, only the rows of the small families (at most :data:`TERMINAL_SMALL_FAMILY`
    scenarios) are read; the family sizes come from ``risk_metrics`` (:meth:`reports.RunDir.family_sizes`).

    Parameters
    ----------
    run_dir : a run directory (or :class:`reports.RunDir`)
    console : a ``rich.console.Console`` (default: a new one on standard output)
    """
    from rich.table import Table

    run = open_run(run_dir)
    console = _console(console)
    manifest = run.manifest
    rm = run.table("risk_metrics")
    ccy = manifest.get("base_currency", "")
    t = Table(title=f"Risk by scenario family ({ccy}, losses positive)", title_justify="left")
    t.add_column("family", overflow="fold")
    t.add_column("scenarios", justify="right")
    confs = run.confidences
    for a in confs:
        t.add_column(f"VaR {level_label(a)}", justify="right")
        t.add_column(f"CVaR {level_label(a)}", justify="right")
    t.add_column("worst scenario", overflow="fold")
    t.add_column("worst loss", justify="right")
    for fam, g in rm.groupby("family", sort=False):
        cells = [_esc(fam), f"{int(g.loc[g.metric == 'scenarios', 'value'].iloc[0])}"]
        for a in confs:
            for m in ("var", "cvar"):
                v = g[(g.metric == m) & (g.confidence == a)]["value"]
                cells.append(money(v.iloc[0]) if len(v) else "")
        worst = g[g.metric == "worst"].iloc[0]
        cells += [_esc(worst["scenario"]), money(worst["value"])]
        t.add_row(*cells)
    console.print(t)

    sizes = run.family_sizes()
    small = [f for f, n in sizes.items() if n <= TERMINAL_SMALL_FAMILY]
    bd = run.table("breakdown", columns=["scenario", "group_name", "pnl"], families=small,
                   where={"level": "asset_class"}) if small else None  # only the rows of the small families
    if bd is not None and len(bd):
        wide = bd.pivot_table(index="scenario", columns="group_name", values="pnl", sort=False)
        t2 = Table(title=f"Scenario P&L by asset class ({ccy})", title_justify="left")
        t2.add_column("scenario", overflow="fold")
        for c in wide.columns:
            t2.add_column(_esc(c), justify="right")
        t2.add_column("total", justify="right")
        for name, row in wide.iterrows():
            t2.add_row(_esc(name), *[money(v) for v in row], money(row.sum()))
        console.print(t2)

    found = worst_sensitivity(run, small) if run.has("sensitivity") else None
    if found is not None:
        worst, rows = found
        t3 = Table(title=f"Full revaluation vs delta-gamma-vega approximation, {_esc(worst)} ({ccy})", title_justify="left")
        for c in ("type", "full", "approximation", "error"):
            t3.add_column(c, justify="left" if c == "type" else "right")
        for _, r in rows.iterrows():
            t3.add_row(_esc(r["type"]), money(r["pnl_full"]), money(r["pnl_sensitivity"]), money(r["error"]))
        console.print(t3)

    ex = horizon_explained(run)
    if ex is not None:
        t4 = Table(title=f"P&L explained at the horizon, worst scenario of each family ({ccy})", title_justify="left")
        for c in ("family", "days", "scenario", "P&L", "time", "market", "cross"):
            t4.add_column(c, justify="left" if c in ("family", "scenario") else "right", overflow="fold")
        for _, r in ex.iterrows():
            t4.add_row(_esc(r["family"]), str(int(r["days"])), _esc(r["scenario"]), money(r["pnl"]), money(r["pnl_time"]),
                       money(r["pnl_market"]), money(r["pnl_cross"]))
        console.print(t4)

    rev = reverse_stress(run)
    if rev is not None and len(rev):
        t5 = Table(title=f"Reverse stress tests: the most plausible moves that cost the loss ({ccy})", title_justify="left")
        for c in ("scenario", "loss", "distance", "tail prob.", "largest moves (share of the distance)"):
            t5.add_column(c, justify="left" if c in ("scenario", "largest moves (share of the distance)") else "right",
                          overflow="fold")
        for _, r in rev.iterrows():
            if not bool(r["converged"]):
                t5.add_row(_esc(r["scenario"]), money(r["loss"]), "", "", "[red]did not converge: not a solution[/]")
                continue
            agree = "" if bool(r["starts_agree"]) else " [yellow](another start found another solution)[/]"
            t5.add_row(_esc(r["scenario"]), money(r["loss"]), f"{r['distance']:.2f}", probability(r["tail_probability"]),
                       _esc(r["main_moves"]) + agree)
        console.print(t5)

    views = run.get("views")
    if views is not None and len(views):
        t6 = Table(title=f"Views by entropy pooling: the families' scenario probabilities ({ccy} for the P&L)",
                   title_justify="left")
        for c in ("family", "view", "prior", "posterior", "effective scenarios"):
            t6.add_column(c, justify="left" if c in ("family", "view") else "right", overflow="fold")
        for _, r in views.iterrows():
            fmt = view_format(str(r["statistic"]))
            t6.add_row(_esc(r["family"]), _esc(r["view"]) + ("" if bool(r["holds"]) else " [red](not met)[/]"),
                       fmt(r["prior"]), fmt(r["posterior"]),
                       f"{r['effective_scenarios']:,.0f} of {int(r['scenarios']):,}")
        console.print(t6)
        for fam, g in views.groupby("family", sort=False):
            eff, n = float(g["effective_scenarios"].iloc[0]), int(g["scenarios"].iloc[0])
            if eff < VIEWS_CONCENTRATED * n:
                console.print(f"[yellow]warning:[/] {_esc(fam)}: the views concentrate the probabilities on "
                              f"{eff:,.0f} effective scenarios of {n:,} ({eff / n:.0%}): its VaR and CVaR rest on fewer "
                              "scenarios than its size says (scenarios.weight)")

    print_sections(run, console)

    for line in caveats(run):
        console.print(f"[yellow]note:[/] {_esc(line)}")
    for line in tail_warnings(run):
        console.print(f"[yellow]warning:[/] {_esc(line)}")
    tm = manifest.get("timings_seconds", {})
    # a run in process started no Ray: its zero would read as a step it took
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}s" for k, v in tm.items()
                      if k != "total" and not (k == "start_ray" and not v))
    if "total" in tm:
        console.print(f"time: {tm['total']:.1f}s in the run, from loading the inputs to writing the tables (the "
                      f"imports before it and the report after it not counted; its steps, some of which run at once: "
                      f"{parts})")
    else:
        console.print(f"time: {parts}")
    counts = manifest.get("counts", {})
    console.print(f"{plural(counts.get('scenarios'), 'scenario')} x {plural(counts.get('positions'), 'position')} in "
                  f"{plural(counts.get('tasks'), 'task')} of {counts.get('chunk_size')}; outputs in {_esc(run.path)}/"
                  + (f" (part files in {_esc(run.parts.target)})" if run.parts.remote else ""))


#: rows of a section's table the terminal shows at most (the report and the Parquet table have all)
TERMINAL_SECTION_ROWS = 20


def print_sections(run_dir: str | Path | RunDir, console=None) -> None:
    """The sections' results in brief, each where its table is in the run: liquidity-adjusted risk,
    factor exposures by sleeve, re-optimisation per case and family, the champion forecaster, the rules
    that fired and the regime view.  Each is a few rows; the HTML report and the tables have the rest."""
    from rich.table import Table

    run = open_run(run_dir)
    console = _console(console)
    ccy = run.manifest.get("base_currency", "")

    def table(title: str, columns: list[str], left: tuple[str, ...]) -> Table:
        t = Table(title=title, title_justify="left")
        for c in columns:  # names wrap on a narrow terminal rather than lose their ends
            t.add_column(c, justify="left" if c in left else "right", overflow="fold")
        return t

    def more(n: int, name: str) -> None:
        if n > TERMINAL_SECTION_ROWS:
            console.print(f"({n - TERMINAL_SECTION_ROWS} more rows in {name}.parquet and the report)")

    la = run.get("la_risk")
    if la is not None and len(la):
        a = float(la["alpha"].max())
        rows = la[la["alpha"] == a]
        t = table(f"Liquidity-adjusted risk at {level_label(a)} ({ccy}, losses positive)",
                  ["family", "VaR", "CVaR", "LA-VaR", "LA-CVaR", "exit cost in the tail"], ("family",))
        for _, r in rows.head(TERMINAL_SECTION_ROWS).iterrows():
            t.add_row(_esc(r["family"]), money(r["var"]), money(r["cvar"]), money(r["la_var"]), money(r["la_cvar"]),
                      money(r["exit_cost_tail"]))
        console.print(t)
        more(len(rows), "la_risk")

    fx = run.get("factor_exposures")
    if fx is not None and len(fx):
        level = "sleeve" if (fx["level"] == "sleeve").any() else str(fx["level"].iloc[0])
        rows = fx[fx["level"] == level]
        fam, method = str(rows["family"].iloc[0]), rows["method"].iloc[0]
        rows = rows[(rows["family"] == fam) & (rows["method"] == method)]
        wide = rows.pivot_table(index="name", columns="factor", values="loading", sort=False)
        r2 = rows.groupby("name", sort=False)["r2"].first()
        t = table(f"Factor exposures by {level.replace('_', ' ')} ({_esc(fam)}, {_esc(method)}; loadings on "
                  "each factor's move)", [level.replace("_", " "), *map(str, wide.columns), "R²"], (level.replace("_", " "),))
        for name, r in wide.head(TERMINAL_SECTION_ROWS).iterrows():
            t.add_row(_esc(name), *[f"{v:.3f}" for v in r], f"{r2[name]:.2f}")
        console.print(t)
        more(len(wide), "factor_exposures")

    ro = run.get("reoptimisation")
    if ro is not None and len(ro):
        t = table(f"Re-optimised under each family ({ccy}; CVaR at the case's confidence, losses positive)",
                  ["case", "family", "status", "CVaR before", "CVaR after", "turnover", "cost"], ("case", "family", "status"))
        case = ro["case_name"] if "case_name" in ro.columns else ro["method"]
        for (_, r), c in zip(ro.head(TERMINAL_SECTION_ROWS).iterrows(), case):
            status = _esc(r["status"]) + (" [yellow](thin tail)[/]" if bool(r.get("thin_tail", False)) else "")
            t.add_row(_esc(c), _esc(r["family"]), status, money(r["cvar_before"]), money(r["cvar_after"]),
                      f"{r['turnover']:.1%}", money(r["cost"]))
        console.print(t)
        more(len(ro), "reoptimisation")

    cc = run.get("champion_challenger")
    if cc is not None and len(cc) and "role" in cc.columns:
        champ = cc[cc["role"] == "champion"]
        if len(champ):
            r = champ.iloc[0]
            over = f" over {int(r['steps'])} walk-forward steps" if "steps" in cc.columns and pd.notna(r["steps"]) else ""
            line = f"forecasters: champion {_esc(r['forecaster'])} on {_esc(r['metric'])}{over}"
            if "decision" in cc.columns:
                promoted = cc[cc["decision"] == "promote"]
                line += (f"; {_esc(promoted['forecaster'].iloc[0])} promoted to champion" if len(promoted)
                         else "; kept: no challenger beat it by the margin and the significance asked for")
            console.print(line + " (champion_challenger.parquet)")

    fired = run.get("rules_fired")
    if fired is not None and len(fired):
        if "fired" in fired.columns:
            fired = fired[fired["fired"].astype(bool)]
        for _, r in fired.head(TERMINAL_SECTION_ROWS).iterrows():
            kind = f" ({_esc(r['kind'])})" if "kind" in fired.columns else ""
            console.print(f"rule {_esc(r['rule'])}{kind} fired: {_esc(r['action'])}")
        more(len(fired), "rules_fired")

    rv = run.get("regime_view")
    if rv is not None and len(rv):
        shown = [(c, head, fmt) for c, head, fmt in (
            ("regime", "regime", str), ("forecaster", "forecaster", str), ("observations", "observations", lambda v: f"{int(v)}"),
            ("correlation", "correlation", lambda v: f"{v:+.2f}"), ("equity_vol", "equity vol", lambda v: f"{v:.1%}"),
            ("bond_vol", "bond vol", lambda v: f"{v:.1%}")) if c in rv.columns]
        t = table("Regime view: equity-bond correlation and volatilities by regime", [h for _, h, _ in shown],
                  ("regime", "forecaster"))
        for _, r in rv.head(TERMINAL_SECTION_ROWS).iterrows():
            t.add_row(*["" if pd.isna(r[c]) else _esc(fmt(r[c])) for c, _, fmt in shown])
        console.print(t)


def horizon_explained(run_dir: str | Path | RunDir) -> pd.DataFrame | None:
    """The worst scenario of each family whose book was valued at its horizon, its P&L split into time
    (at unchanged levels), market move (today's book) and cross term: columns family, days, scenario,
    pnl, pnl_time, pnl_market, pnl_cross; None when no family was (or the run predates the split)."""
    from stressgrid.core import DataError

    run = open_run(run_dir)
    if not run.has("scenarios"):
        return None
    cols = ["scenario", "family", "days", "pnl", "pnl_time", "pnl_market", "pnl_cross", "revaluation"]
    rows = []
    for fam in run.family_sizes().index:
        try:  # the family's largest loss, read by its row (the other rows' P&L only)
            r = run.smallest("scenarios", 1, by="pnl", columns=cols, families=[fam])
        except DataError:  # a run written before the split
            return None
        if len(r) and r["revaluation"].iloc[0] == "horizon":
            rows.append(r)
    return pd.concat(rows, ignore_index=True)[cols[:-1]] if rows else None


def worst_sensitivity(run: RunDir, families: list[str]) -> tuple[str, pd.DataFrame] | None:
    """The worst scenario of the first of ``families`` (small ones) that has scenarios, and its rows of
    ``sensitivity``: type, pnl_full, pnl_sensitivity, error; None when none has.  Only the rows of that
    family are read."""
    for family in families:
        sc = run.table("scenarios", columns=["scenario", "pnl"], families=[family])
        if len(sc):
            worst = sc.sort_values("pnl").iloc[0]["scenario"]
            return worst, run.table("sensitivity", columns=["type", "pnl_full", "pnl_sensitivity", "error"],
                                    families=[family], where={"scenario": [worst]})
    return None


def look_ahead_note(late: dict, as_of: str) -> str:
    """One sentence on the families whose history window ends after the as-of date (family -> its end)."""
    items = [f"{f} (to {end})" for f, end in late.items()]
    return (f"the history windows of {_shorten(items)} end after the as-of date {as_of}: their moves use data a "
            "forecast made on that date could not have had, as a stressed calibration may mean to, and a backtest "
            "must not (window.end).")


def caveats(run_dir: str | Path | RunDir) -> list[str]:
    """The caveats of a run, one sentence each: unpriced positions, coverage, factors held flat on purpose
    or for want of data, factors filled."""
    run = open_run(run_dir)
    manifest = run.manifest
    out = []
    counts = manifest.get("counts", {})
    if manifest.get("unpriced_types"):
        pos = run.table("positions")
        n_un = int((~pos.priced.astype(bool)).sum())
        out.append(f"{n_un} of {plural(counts.get('positions'), 'position')} {'is' if n_un == 1 else 'are'} not priced yet "
                   f"(types: {', '.join(manifest['unpriced_types'])}) and are excluded from every figure.")
    rejected = manifest.get("checkpoints_rejected") or []
    if rejected:
        out.append(f"{len(rejected)} checkpoint(s) in the run directory did not verify on --resume and their tasks "
                   f"ran again (nothing in them was read as code): {'; '.join(rejected[:3])}"
                   f"{' ...' if len(rejected) > 3 else ''}.")
    settle = (((manifest.get("notes") or {}).get("horizon") or {}).get("settle_inside")) or {}
    if settle:
        ids = list(dict.fromkeys(i for v in settle.values() for i in v))
        verb = "expires or matures" if len(ids) == 1 else "expire or mature"
        out.append(f"{plural(len(ids), 'position')} {verb} inside the horizon of {', '.join(settle)}: "
                   f"{', '.join(ids[:6])}{f' and {len(ids) - 6} more' if len(ids) > 6 else ''}. The scenario tables "
                   "settle them on the horizon's levels, moves after their last day included; the daily paths of the "
                   "liquidity drawdowns settle them on their last day (docs/kernels.md, time over a horizon).")
    late = ((manifest.get("notes") or {}).get("windows") or {}).get("after_as_of") or {}
    if isinstance(late, dict) and late:
        out.append(look_ahead_note(late, str(manifest.get("as_of"))))
    unwritten = ((manifest.get("notes") or {}).get("outputs") or {}).get("scenario_pnl")
    if isinstance(unwritten, str):
        out.append(unwritten[:1].upper() + unwritten[1:] + ".")
    liq = (manifest.get("notes") or {}).get("liquidity") or {}
    explained = horizon_explained(run) if run.has("drawdown_paths") else None
    if explained is not None:  # a run written before paths aged day by day: which paths stayed at the as-of date
        on_paths = set(run.table("drawdown_paths", columns=["family"])["family"].astype(str))
        stale = [f for f in explained["family"].astype(str) if f in on_paths and f not in liq.get("paths_aged", [])]
        if stale:
            out.append(f"the daily paths of {', '.join(stale)} in the liquidity drawdowns (la_drawdown, drawdown_paths, "
                       "capacity) revalue the book at the as-of date: no time passes along a path, while the scenario "
                       "tables value these families at their horizon (pnl_time); a run of this version ages them.")
    if isinstance(liq.get("la_risk"), str):
        out.append(f"liquidity-adjusted VaR/CVaR (la_risk): {liq['la_risk']}.")
    if liq.get("drawdown_skipped"):
        limit = liq.get("max_path_rows")
        out.append(f"the liquidity drawdowns (la_drawdown, drawdown_paths) leave out the daily paths of "
                   f"{', '.join(map(str, liq['drawdown_skipped']))}: more path rows (scenarios x days) than "
                   f"{f'{int(limit):,}' if limit else 'the limit'} in a family; their figures are in the scenario tables only.")
    declared: set = set()
    if run.has("coverage"):
        cov = run.table("coverage")
        order = ["history", "bundled", "interpolated", "proxy", "override", "flat"]
        counts = cov["source"].value_counts()
        parts = [f"{int(counts[s])} {s}" for s in order if s in counts] + \
                [f"{int(n)} {s}" for s, n in counts.items() if s not in order]
        line = f"coverage of the {plural(len(cov), 'factor')}: {', '.join(parts)} (coverage table)."
        if "exposure_share" in cov.columns:
            share = cov.groupby("source")["exposure_share"].sum()
            line += (f" Of the book's gross exposure, {share.get('proxy', 0.0):.1%} rests on proxied factors and "
                     f"{share.get('flat', 0.0):.1%} on flat ones (weighted by each factor's typical daily move).")
        out.append(line)
        flat = cov[cov["source"] == "flat"]
        if len(flat):
            declared = set(flat["factor"])
            # the default proxies hold some kinds flat by rule (a futures basis); the others were named in market.flat
            by_rule = flat["detail"].astype(str).str.startswith(DEFAULT_MAP)
            for part, why in ((flat[~by_rule], "on purpose (market.flat"), (flat[by_rule], "by the default proxies' rule "
                                                                            "(default_proxies")):
                if len(part):
                    out.append(f"{plural(len(part), 'factor')} {'is' if len(part) == 1 else 'are'} held flat {why}; each "
                               f"reason is in the coverage table): {_shorten(sorted(set(part['factor'])))}.")
    unc = manifest.get("uncovered_factors") or {}
    if unc:
        sizes = run.family_sizes()
        # factors without data in every scenario of every family (typically set by market overrides)
        always = set.intersection(*[
            {f for f, n in unc.get(fam, {}).items() if n == size} for fam, size in sizes.items()
        ]) if len(unc) == len(sizes) else set()
        always -= declared
        if always:
            names = sorted(always)
            out.append(f"{plural(len(names), 'factor')} {'has' if len(names) == 1 else 'have'} no history and "
                       f"{'is' if len(names) == 1 else 'are'} held flat in every scenario "
                       f"(market overrides): {_shorten(names)}.")
        for fam, facs in unc.items():
            rest = {f: n for f, n in facs.items() if f not in always and f not in declared}
            if rest:
                detail = _shorten([f"{f} ({n} of {sizes.get(fam, '?')})" for f, n in rest.items()])
                out.append(f"family {fam}: no data, held flat, for {detail}.")
    for fam, facs in (manifest.get("filled_factors") or {}).items():
        out.append(f"family {fam}: {plural(len(facs), 'factor')} calibrated from public facts or propagated, "
                   f"not replayed: {_shorten(sorted(facs))}.")
    return out


def implausible_warning(family: str, flagged: int, scenarios: int, multiple: float, cap: bool, factor: str,
                        worst: float) -> str:
    """The line of a family whose model moved factors beyond the tail guard's bound."""
    how = "capped at the bound" if cap else "flagged, not capped"
    return (f"{family}: {flagged:,} of {scenarios:,} scenario{'' if scenarios == 1 else 's'} ({flagged / scenarios:.1%}) "
            f"move a factor beyond "
            f"{multiple:g}x its historical extreme over the horizon ({how}; scenarios.implausible); worst {factor} "
            f"x{worst:.1f} of its historical extreme")


def garch_warning(family: str, found: dict[str, str]) -> str:
    """The line of a family whose GARCH fits sit at a boundary (``found``: factor -> its parameters)."""
    items = [f"{f} ({p})" for f, p in found.items()]
    return (f"{family}: GARCH fit at a boundary (alpha + beta near 1, dof near 2 or a large alpha) for "
            + ", ".join(items[:4]) + (f" and {len(items) - 4} more (coverage_families.garch_boundary)" if len(items) > 4 else ""))


#: below this share of a family's scenarios, the effective number of scenarios its views leave is warned about
VIEWS_CONCENTRATED = 0.25

#: scenario kinds whose families are lists of designed stresses, not samples of a distribution: their VaR
#: and CVaR rest on one scenario by construction, and the thin-tail warning leaves them out
DESIGNED_KINDS = ("hypothetical", "reverse")


#: a family of more scenarios than this is taken as a distribution without reading its kind: hand-written
#: stresses and reverse solutions come in handfuls, and a large family's scenarios are not read for it
DESIGNED_MAX = 1000


def designed_families(run: RunDir, families: list[str] | None = None) -> set[str]:
    """The families among ``families`` (default: all) whose scenarios are written by hand or solved for
    (:data:`DESIGNED_KINDS`): a list of stresses, not draws from a distribution.  Only families of at
    most :data:`DESIGNED_MAX` scenarios are read, and none when the manifest lists these families
    (``designed_families``; a run written before the manifest carried the list is read)."""
    listed = run.manifest.get("designed_families")
    if isinstance(listed, list):
        return {str(f) for f in listed} & set(run.families if families is None else families)
    if not run.has("scenarios"):
        return set()
    sizes = run.family_sizes()
    fams = [f for f in (run.families if families is None else families) if int(sizes.get(f, 0)) <= DESIGNED_MAX]
    if not fams:
        return set()
    kinds = run.table("scenarios", columns=["family", "kind"], families=fams)
    return set(kinds.loc[kinds["kind"].isin(DESIGNED_KINDS), "family"].astype(str))


def view_format(statistic: str) -> Callable[[float], str]:
    """How a view's prior and posterior read, from the statistic compared (the ``views`` table's
    ``statistic``): P&L in base currency, a probability in %, a correlation as a number, a rate, spread
    or basis move in bp, any other factor's move in %."""
    if "pnl" in statistic:
        return money
    if statistic.startswith("P("):
        return lambda x: f"{x:.2%}"
    if statistic.startswith("corr("):
        return lambda x: f"{x:+.3f}"
    m = re.match(r"(mean|vol)\(([^)]+)\)", statistic)
    if m is None:
        return lambda x: f"{x:.4g}"
    sign = "+" if m.group(1) == "mean" else ""
    if m.group(2).startswith(("IR.", "CR.", "BASIS.")):
        return lambda x: f"{x * 1e4:{sign},.1f}bp"
    return lambda x: f"{x:{sign}.2%}"


def stressed_var(risk_metrics: pd.DataFrame, designed: set[str]) -> tuple[float, str, float] | None:
    """``(value, family, confidence)``: the largest VaR at the highest confidence level of ``risk_metrics``
    over the families not in ``designed`` (lists of stresses, :func:`designed_families`), or None when no
    such family has a VaR."""
    var = risk_metrics[risk_metrics["metric"] == "var"]
    if not len(var):
        return None
    a = float(var["confidence"].astype(float).max())
    var = var[np.isclose(var["confidence"].astype(float), a) & ~var["family"].astype(str).isin(designed)]
    if not len(var):
        return None
    top = var.loc[var["value"].idxmax()]
    return float(top["value"]), str(top["family"]), a


def thin_tail_warning(thin: dict[str, list[tuple[float, int]]], min_tail: int | None = None) -> str:
    """One line naming the families whose CVaR rests on too few scenarios (``thin``: family -> [(confidence,
    tail scenarios), ...]; ``min_tail``: the batch's ``risk.min_tail_scenarios`` when known)."""
    below = f"fewer than {min_tail}" if min_tail is not None else "too few"
    parts = [f"{f} (" + ", ".join(f"{level_label(a)}: {k}" for a, k in sorted(v, reverse=True)) + ")" for f, v in thin.items()]
    return (f"CVaR rests on {below} tail scenarios (risk.min_tail_scenarios) in {plural(len(parts), 'family')}: "
            + ", ".join(parts[:6]) + (f" and {len(parts) - 6} more (risk_metrics.thin_tail)" if len(parts) > 6 else ""))


def _flag(col: pd.Series) -> pd.Series:
    """A nullable bool column as a mask (null: False)."""
    return col.astype("boolean").fillna(False).astype(bool)


def tail_warnings(run_dir: str | Path | RunDir) -> list[str]:
    """The tail guards' warnings of a run, one line each: per family, moves beyond the plausibility bound
    (``coverage_families``) and GARCH fits at a boundary; one line for the families whose CVaR rests on too
    few tail scenarios (``risk_metrics.thin_tail``), and one for re-optimisations on such a tail."""
    run = open_run(run_dir)
    out = []
    if run.has("coverage_families"):
        cf = run.table("coverage_families")
        if "implausible" in cf.columns:
            for fam, g in cf.groupby("family", sort=False):
                flagged = int(g["implausible"].fillna(0).sum())
                if flagged:
                    w = g.loc[g["max_multiple"].idxmax()]
                    out.append(implausible_warning(fam, flagged, int(g["scenarios"].iloc[0]), float(w["guard_multiple"]),
                                                   bool(w["guard_cap"]), w["factor"], float(w["max_multiple"])))
        if "garch_boundary" in cf.columns:
            at = cf[cf["garch_boundary"].notna()]
            for fam, g in at.groupby("family", sort=False):
                out.append(garch_warning(fam, dict(zip(g["factor"], g["garch_boundary"]))))
    rm = run.table("risk_metrics")
    if "thin_tail" in rm.columns:
        thin = rm[(rm["metric"] == "cvar") & _flag(rm["thin_tail"])]
        found = {f: [(float(a), int(k)) for a, k in zip(g["confidence"], g["tail_scenarios"])]
                 for f, g in thin.groupby("family", sort=False)}
        if found:  # a list of designed stresses is not a distribution: no warning
            designed = designed_families(run, list(found))
            found = {f: v for f, v in found.items() if f not in designed}
        if found:
            out.append(thin_tail_warning(found))
    ro = run.get("reoptimisation")
    if ro is not None and "thin_tail" in ro.columns:
        thin = ro[_flag(ro["thin_tail"])]
        if len(thin):
            parts = [f"{f} ({plural(int(k), 'scenario')} at {level_label(a)})" for f, k, a in
                     zip(thin["family"], thin["tail_scenarios"], thin["alpha"])]
            parts = list(dict.fromkeys(parts))
            out.append("re-optimisation on a thin tail (fewer scenarios than risk.min_tail_scenarios): "
                       + ", ".join(parts[:6]) + (f" and {len(parts) - 6} more (reoptimisation.thin_tail)" if len(parts) > 6 else "")
                       + "; its optimum fits those scenarios, whatever the solver's status")
    return out


def _fmt_limit_value(value: float, units: str) -> str:
    if pd.isna(value):
        return ""
    if units == "nav":
        return f"{value:.2%}"
    if units == "currency":
        return money(value)
    if units == "days":
        return f"{value:,.2f}d"
    if units == "correlation":
        return f"{value:.3f}"
    return f"{value:,.1f}bp"


def print_breaches(table: pd.DataFrame, console=None, all_limits: bool = False) -> None:
    """Print the breached limits of an evaluated limits table (:func:`reports.evaluate_limits`).

    With ``all_limits``, every row is printed, breached or not.  Prints one line when nothing is breached.
    """
    from rich.table import Table

    console = _console(console)
    rows = table if all_limits else table[table["breached"]]
    n = int(table["breached"].sum())
    if rows.empty:
        console.print(f"limits: {plural(len(table), 'check')}, no breach")
        return
    t = Table(title=f"Limit breaches: {n} of {plural(len(table), 'check')}" if not all_limits else f"Limits ({n} breached)",
              title_justify="left")
    for c in ("limit", "family", "group", "value", "limit value", "headroom", ""):
        t.add_column(c, justify="right" if c in ("value", "limit value", "headroom") else "left")
    for _, r in rows.iterrows():
        t.add_row(_esc(r["limit_name"]), "" if r["family"] is None or pd.isna(r["family"]) else _esc(r["family"]), _esc(r["group_name"]),
                  _fmt_limit_value(r["value"], r["units"]), _fmt_limit_value(r["threshold"], r["units"]),
                  _fmt_limit_value(r["headroom"], r["units"]), "[red]BREACH[/]" if r["breached"] else "ok")
    console.print(t)
