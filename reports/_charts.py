"""Charts of a run as inline SVG (matplotlib's SVG backend, glyphs as paths: no fonts or files needed).

Each ``chart_*`` function takes a :class:`reports.RunDir` and returns an SVG string, or None when the run
has nothing to draw.  The ``*_data`` helpers return the numbers a chart draws, so they can be tested.
"""

from __future__ import annotations

import io
import itertools
import re
from contextvars import ContextVar

import numpy as np
import pandas as pd

from stressgrid.core.measures import level_label

from ._rundir import RunDir

__all__ = [
    "chart_scenario_pnl",
    "chart_distributions",
    "chart_contributions",
    "chart_drawdown_paths",
    "chart_capacity",
    "chart_reoptimisation",
    "scenario_bar_data",
    "weighted_histogram",
    "sig2",
    "aum_ticks",
    "SMALL_FAMILY",
    "MAX_BAR_FAMILIES",
]

#: a family with at most this many scenarios is drawn scenario by scenario (bars); larger ones as a distribution
SMALL_FAMILY = 40
_RC = {
    "svg.fonttype": "path",  # text as glyph paths: renders the same without any font installed
    "svg.hashsalt": "stressgrid",  # deterministic ids
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.fontsize": 8,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "none",
}
_GAIN, _LOSS = "#2e7d32", "#c62828"
#: metric names of risk_metrics as a reader writes them
_SHOWN = {"var": "VaR", "cvar": "CVaR"}
_counter = itertools.count()
#: the chart being drawn, the start of its SVG ids (unique in a report whose charts come from two processes)
_drawing: ContextVar[str] = ContextVar("drawing", default="chart")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig) -> str:
    """The figure as an inline ``<svg>`` element, its ids prefixed so several can share one page."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE (inline SVG needs neither)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    prefix = f"{_drawing.get()}{next(_counter)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', text))

    def sub(m: re.Match) -> str:
        return f"{m.group(1)}{prefix}{m.group(2)}{m.group(3)}" if m.group(2) in ids else m.group(0)

    return re.sub(r'(\bid="|"#|url\(#)([^")]+)([")])', sub, text)


def _with_rc(fn):
    def wrapper(*args, **kwargs):
        import matplotlib

        token = _drawing.set(fn.__name__.removeprefix("chart_").replace("_", "-"))
        try:
            with matplotlib.rc_context(_RC):
                return fn(*args, **kwargs)
        finally:
            _drawing.reset(token)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def _m(x):
    return np.asarray(x, dtype=float) / 1e6


def _legend_right(ax, **kw) -> None:
    """The axes' legend beside it, outside the plotting area (constrained layout makes room for it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def _legend_outside(fig, ax, ncol: int, loc: str = "outside lower center") -> None:
    """One legend for the figure (the handles of ``ax``), below (or above) every plot."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc=loc, ncol=max(1, ncol))


def sig2(x: float) -> str:
    """``x`` to two significant digits, rounded down (e.g. 0.314849 -> ``0.31``, 12.6 -> ``12``, 2 -> ``2``):
    a capacity is never shown larger than it is."""
    import math

    if not np.isfinite(x) or x <= 0:
        return f"{x:g}"
    e = math.floor(math.log10(x))
    q = 10.0 ** (e - 1)
    v = math.floor(x / q * (1 + 1e-12)) * q
    return f"{v:.{max(0, 1 - e)}f}".rstrip("0").rstrip(".") if e < 1 else f"{v:.0f}"


def aum_ticks(multiples) -> list[float]:
    """At most six tick positions for a log axis of AUM multiples: 1-2-5 (or 1-3, or powers of ten) within
    the range when there are at least two, else the smallest, 1 and the largest multiple that are in it."""
    lo, hi = float(np.min(multiples)), float(np.max(multiples))
    decades = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in decades for m in subs if lo * (1 - 1e-9) <= m * 10.0 ** e <= hi * (1 + 1e-9)]
        if 2 <= len(ticks) <= 6:
            return ticks
    if len(ticks) > 6:  # many decades: every other power of ten
        return ticks[::2]
    return sorted({lo, hi} | ({1.0} if lo < 1.0 < hi else set()))


def scenario_bar_data(run: RunDir) -> pd.DataFrame:
    """Scenarios drawn as bars: every scenario of the families with at most :data:`SMALL_FAMILY` scenarios,
    or the 20 worst scenarios of the run when every family is larger.  Columns scenario, family, pnl.

    Reads only the rows of the small families, or (every family being larger) the ``pnl`` column piece by
    piece and the other columns of the 20 rows found (:meth:`reports.RunDir.smallest`).
    """
    sizes = run.family_sizes()
    small = list(sizes[sizes <= SMALL_FAMILY].index)
    if small:
        return run.table("scenarios", columns=["scenario", "family", "pnl"], families=small).reset_index(drop=True)
    return run.smallest("scenarios", 20, "pnl", columns=["scenario", "family", "pnl"])


#: the unit the histogram's weights are summed in (a family's weights sum to 1: far from int64's bound)
_MASS_UNIT = float(2**52)
#: the total weight up to which they are (2**63 / _MASS_UNIT is 2048)
_MASS_BOUND = 1024.0


def weighted_histogram(run: RunDir, family: str, bins: int = 60, unit: float = 1.0) -> tuple[np.ndarray, np.ndarray] | None:
    """The probability-weighted histogram of the book P&L (divided by ``unit``, e.g. 1e6 for millions) of
    one family's scenarios, read piece by piece, columns ``pnl`` and ``weight`` only.

    Returns ``(edges [bins + 1], mass [bins])``: ``bins`` equal bins from the smallest to the largest P&L,
    each closed on the left and the last also on the right, and the sum of the weights in each, the same
    as ``numpy.histogram(pnl / unit, bins, weights=weight)`` on the whole family (each weight to 2**-52,
    summed exactly, so that the result does not depend on how the table is split); None when the family
    has no scenario with a P&L.
    """
    lo, hi = np.inf, -np.inf
    for piece in run.scan("scenarios", columns=["pnl"], families=[family]):
        v = piece["pnl"].to_numpy(float) / unit
        v = v[np.isfinite(v)]
        if len(v):
            lo, hi = min(lo, v.min()), max(hi, v.max())
    if not np.isfinite(lo):
        return None
    edges = np.histogram_bin_edges(np.array([lo, hi]), bins)
    # the weights summed in integer units of 2**-52: exact, so the same whichever pieces the table is in;
    # in floating point as well, for a family whose weights do not sum to 1 as they should (a run folder
    # written elsewhere), where the integers could overflow
    mass = np.zeros(bins, dtype=np.int64)
    approx = np.zeros(bins)
    for piece in run.scan("scenarios", columns=["pnl", "weight"], families=[family]):
        v, w = piece["pnl"].to_numpy(float) / unit, piece["weight"].to_numpy(float)
        keep = np.isfinite(v) & np.isfinite(w)
        idx = np.minimum(np.searchsorted(edges, v[keep], side="right") - 1, bins - 1)
        approx += np.bincount(idx, weights=w[keep], minlength=bins)
        if np.abs(approx).sum() <= _MASS_BOUND:
            np.add.at(mass, idx, np.rint(w[keep] * _MASS_UNIT).astype(np.int64))
    return edges, (mass / _MASS_UNIT if np.abs(approx).sum() <= _MASS_BOUND else approx)


@_with_rc
def chart_scenario_pnl(run: RunDir) -> str | None:
    """Horizontal bars of the book P&L per scenario (see :func:`scenario_bar_data`)."""
    d = scenario_bar_data(run)
    if d.empty:
        return None
    d = d.iloc[::-1]
    labels = [f"{s}  [{f}]" if s.partition(":")[0] != f else s for s, f in zip(d["scenario"], d["family"])]
    fig = _figure(10, max(2.0, 0.8 + 0.2 * len(d)))
    ax = fig.add_subplot()
    v = _m(d["pnl"])
    ax.barh(np.arange(len(d)), v, color=np.where(v < 0, _LOSS, _GAIN))
    ax.set_yticks(np.arange(len(d)), labels)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"book P&L (millions {run.base_currency})")
    ax.grid(axis="y", visible=False)
    for y, x in zip(np.arange(len(d)), v):
        ax.annotate(f"{x:,.1f}", (x, y), xytext=(3 if x >= 0 else -3, 0), textcoords="offset points",
                    ha="left" if x >= 0 else "right", va="center", fontsize=7)
    ax.margins(x=0.12)
    return _svg(fig)


@_with_rc
def chart_distributions(run: RunDir) -> str | None:
    """Weighted P&L histogram of each family with more than :data:`SMALL_FAMILY` scenarios, with -VaR and
    -CVaR of every confidence level marked (losses are on the left)."""
    rm = run.table("risk_metrics")
    sizes = run.family_sizes()
    hists = {f: weighted_histogram(run, f, unit=1e6) for f, n in sizes.items() if n > SMALL_FAMILY}
    fams = [f for f, h in hists.items() if h is not None]
    if not fams:
        return None
    ncol = 2 if len(fams) > 1 else 1
    nrow = -(-len(fams) // ncol)
    fig = _figure(10, 2.6 * nrow + 0.3)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    colors = ["#ef6c00", "#6a1b9a", "#1565c0", "#00838f"]
    for ax, fam in zip(axes, fams):
        edges, mass = hists[fam]
        ax.stairs(mass, edges, fill=True, color="#90a4ae")  # the histogram as one patch, not a bar per bin
        r = rm[rm["family"] == fam]
        for a, col in zip(run.confidences, colors):
            for metric, ls in (("var", "--"), ("cvar", "-")):
                v = r.loc[(r["metric"] == metric) & np.isclose(r["confidence"].astype(float), a), "value"]
                if len(v):
                    x = -float(v.iloc[0]) / 1e6
                    ax.axvline(x, color=col, ls=ls, lw=1.2, label=f"{_SHOWN[metric]} {level_label(a)}: {-x:,.1f}m")
        ax.set_title(f"{fam} ({sizes[fam]} scenarios)", loc="left")  # more than SMALL_FAMILY: always plural
        ax.set_xlabel(f"book P&L (millions {run.base_currency})")
        ax.set_ylabel("probability")
        if ax.get_legend_handles_labels()[0]:
            _legend_right(ax)
    for ax in axes[len(fams):]:
        ax.set_visible(False)
    return _svg(fig)


@_with_rc
def chart_contributions(run: RunDir) -> str | None:
    """Euler contributions to CVaR at the highest confidence level, by asset class and by sleeve: one bar
    per family (grouped bars), or a heat map of groups by families when there are more than
    :data:`MAX_BAR_FAMILIES` families."""
    ct = run.table("contributions")
    if ct.empty:
        return None
    a = max(run.confidences)
    ct = ct[np.isclose(ct["confidence"], a)]
    fams = run.families
    levels = ("asset_class", "sleeve")
    wides = {lv: ct[ct["level"] == lv].pivot_table(index="group_name", columns="family", values="cvar_contribution", sort=False)
             .reindex(columns=fams) for lv in levels}
    n_groups = max(len(w) for w in wides.values())
    if len(fams) > MAX_BAR_FAMILIES:
        return _contribution_heatmap(run, wides, fams, a, n_groups)
    fig = _figure(10, max(2.4, 0.6 + 0.18 * len(fams) * n_groups))
    axes = fig.subplots(1, 2)
    cmap = _palette(len(fams))
    for ax, level in zip(axes, levels):
        wide = wides[level]
        groups = list(wide.index)[::-1]
        h = 0.8 / len(fams)
        for j, fam in enumerate(fams):
            ax.barh(np.arange(len(groups)) + (j - (len(fams) - 1) / 2) * h, _m(wide.loc[groups, fam].fillna(0.0)),
                    height=h, color=cmap[j], label=fam)
        ax.set_yticks(np.arange(len(groups)), groups)
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="y", visible=False)
        ax.set_title(f"by {level.replace('_', ' ')}", loc="left")
        ax.set_xlabel(f"CVaR {level_label(a)} contribution (millions {run.base_currency})")
    _legend_outside(fig, axes[1], min(len(fams), 6))
    return _svg(fig)


#: above this many families, contributions are drawn as a heat map rather than grouped bars
MAX_BAR_FAMILIES = 6


def _contribution_heatmap(run: RunDir, wides: dict, fams: list[str], a: float, n_groups: int) -> str:
    fig = _figure(10, 1.2 + 0.32 * len(fams) * 2)
    axes = fig.subplots(2, 1)
    vmax = max(float(np.nanmax(np.abs(w.to_numpy()))) for w in wides.values()) / 1e6 or 1.0
    for ax, (level, wide) in zip(axes, wides.items()):
        z = _m(wide.T.to_numpy())  # families x groups
        # pcolormesh, not imshow: vector cells rather than an embedded raster image
        im = ax.pcolormesh(np.arange(z.shape[1] + 1) - 0.5, np.arange(z.shape[0] + 1) - 0.5, z, cmap="RdBu_r",
                           vmin=-vmax, vmax=vmax)
        ax.set_xlim(-0.5, z.shape[1] - 0.5)
        ax.set_ylim(z.shape[0] - 0.5, -0.5)
        ax.set_xticks(np.arange(wide.shape[0]), list(wide.index))
        ax.set_yticks(np.arange(len(fams)), fams)
        ax.grid(False)
        ax.tick_params(length=0)
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, f"{v:,.1f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 * vmax else "black")
        ax.set_title(f"by {level.replace('_', ' ')}", loc="left")
        cb = fig.colorbar(im, ax=ax, label=f"CVaR {level_label(a)} contribution (m {run.base_currency})", shrink=0.9)
        cb.solids.set_rasterized(False)  # matplotlib rasterizes long colour bars; keep the SVG pure vector
    return _svg(fig)


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


@_with_rc
def chart_drawdown_paths(run: RunDir) -> str | None:
    """Cumulative P&L paths of the worst scenarios of each family, with and without unwind costs."""
    dp = run.get("drawdown_paths")
    if dp is None or dp.empty:
        return None
    fams = list(dict.fromkeys(dp["family"]))
    ncol = 2 if len(fams) > 1 else 1
    nrow = -(-len(fams) // ncol)
    fig = _figure(10, 2.8 * nrow + 0.3)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, fam in zip(axes, fams):
        g = dp[dp["family"] == fam]
        for (scen, p), col in zip(g.groupby("scenario", sort=False), _palette(g["scenario"].nunique())):
            p = p.sort_values("day")
            ax.plot(p["day"], _m(p["pnl"]), color=col, lw=1.3, label=str(scen))
            if "la_pnl" in p and p["la_pnl"].notna().any():
                ax.plot(p["day"], _m(p["la_pnl"]), color=col, lw=1.0, ls="--")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{fam} (dashed: net of unwind costs)", loc="left")
        ax.set_xlabel("day")
        ax.set_ylabel(f"cumulative P&L (m {run.base_currency})")
        _legend_right(ax, fontsize=7)
    for ax in axes[len(fams):]:
        ax.set_visible(False)
    return _svg(fig)


@_with_rc
def chart_capacity(run: RunDir) -> str | None:
    """Capacity curve of the book: days to liquidate, liquidation cost and liquidity-adjusted risk against
    the AUM multiple."""
    cap = run.get("capacity")
    if cap is None or cap.empty:
        return None
    from ._tables import NO_SCOPE, capacity_scopes

    book = capacity_scopes(cap)
    book = book[book["level"] == "book"]
    if book.empty:
        return None
    panels = [("days_to_liquidate", "days to liquidate", 1.0), ("cost_bps", "liquidation cost (bp)", 1.0)]
    panels += [(c, f"{shown} (m {run.base_currency})", 1e-6) for c, shown in (("la_cvar", "LA CVaR"), ("la_drawdown", "LA drawdown"))
               if c in book and book[c].notna().any()]
    fig = _figure(10, 3.0)
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    scopes = list(dict.fromkeys(book["scope"]))
    # a few round multiples as ticks (every point of the grid is drawn as a marker): the grid's own
    # multiples (0.314849x, ...) overprinted each other
    ticks = aum_ticks(book["aum_multiple"].unique())
    for ax, (col, label, scale) in zip(axes, panels):
        for scope, color in zip(scopes, _palette(len(scopes))):
            b = book[book["scope"] == scope].sort_values("aum_multiple")
            ax.plot(b["aum_multiple"], b[col].astype(float) * scale, marker="o", ms=3, color=color,
                    label=None if scope == NO_SCOPE else str(scope))
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{sig2(t)}x" for t in ticks])
        ax.minorticks_off()
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(label, loc="left")
        ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    fig.supxlabel("AUM multiple of the current book (log scale; dotted: 1x, the book as sized)", fontsize=9)
    if scopes != [NO_SCOPE]:
        _legend_outside(fig, axes[0], len(scopes), loc="outside upper center")  # the axis label is below
    return _svg(fig)


@_with_rc
def chart_reoptimisation(run: RunDir, max_positions: int = 30) -> str | None:
    """Weights before and after re-optimisation, per family and method (the positions with the largest
    trades, at most ``max_positions`` per panel)."""
    rw = run.get("reoptimisation_weights")
    if rw is None or rw.empty:
        return None
    key = "case_name" if "case_name" in rw.columns else "method"
    pairs = list(dict.fromkeys(zip(rw["family"], rw[key])))[:4]
    n_pos = min(max_positions, int(rw.groupby(["family", key]).size().max()))
    fig = _figure(10, 0.9 + 0.2 * n_pos * (-(-len(pairs) // 2)))
    axes = fig.subplots(-(-len(pairs) // 2), 2 if len(pairs) > 1 else 1, squeeze=False).ravel()
    for ax, (fam, method) in zip(axes, pairs):
        g = rw[(rw["family"] == fam) & (rw[key] == method)]
        g = g.reindex(g["trade"].abs().sort_values(ascending=False).index).head(max_positions).iloc[::-1]
        y = np.arange(len(g))
        ax.barh(y + 0.2, g["weight_current"] * 100, height=0.4, color="#90a4ae", label="current")
        ax.barh(y - 0.2, g["weight_new"] * 100, height=0.4, color="#1565c0", label="re-optimised")
        ax.set_yticks(y, g["position_id"].astype(str))
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("weight (% of NAV)")
        ax.set_title(f"{fam}, {method}", loc="left")
    _legend_outside(fig, axes[0], 2)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    return _svg(fig)


def chart_reverse(run: RunDir, max_panels: int = 4, n_factors: int = 12) -> str | None:
    """Each reverse stress solution (at most ``max_panels``) as a bar chart of its factor moves in standard
    deviations of the horizon move (free factors dark, those moved by their conditional expectation light),
    titled with its loss and distance."""
    from ._reverse import chart_data, format_move, reverse_stress

    rev = reverse_stress(run)
    if rev is None:
        return None
    rev = rev[rev["converged"].astype(bool)].head(max_panels)
    if not len(rev):
        return None
    cols = 2 if len(rev) > 1 else 1
    rows = -(-len(rev) // cols)
    fig = _figure(10, 0.6 + rows * (0.9 + 0.22 * n_factors))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, r in zip(axes, rev.itertuples()):
        d = chart_data(run, r.scenario, n_factors).iloc[::-1]
        y = np.arange(len(d))
        colors = ["#1565c0" if role == "free" else "#90caf9" for role in d["role"]]
        ax.barh(y, d["z"].astype(float), color=colors, height=0.7)
        ax.set_yticks(y, [f"{f}  {format_move(f, m)}" for f, m in zip(d["factor"], d["move"])])
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("move (standard deviations of the horizon move)")
        ax.set_title(f"{r.scenario}\nloss {r.loss / 1e6:,.2f}m at distance {r.distance:.2f}", loc="left", fontsize="medium")
    for ax in axes[len(rev):]:
        ax.set_visible(False)
    return _svg(fig)


#: the charts a second process may draw (``reports._chart_child``): each a function of the run alone
IN_CHILD = ("chart_scenario_pnl", "chart_distributions", "chart_contributions", "chart_drawdown_paths",
            "chart_capacity", "chart_reoptimisation")
