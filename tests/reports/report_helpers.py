"""Helpers of the report tests: run a batch serially, copy a run directory, add synthetic optional tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


#: limits used by the report tests: a book CVaR limit, any sleeve's loss in the crisis family, days to liquidate
LIMITS = {"nav": 5e8, "limits": [
    {"metric": "cvar", "confidence": 0.99, "max": "4%"},
    {"metric": "stressed_loss", "scope": "sleeve:*", "family": "crisis", "max": "3%"},
    {"metric": "days_to_liquidate", "max": 5},
]}


def run_batch(batch_path: Path, out: Path) -> Path:
    """Run a batch serially (no Ray) and write its run directory."""
    from stressgrid.grid import SerialExecutor, execute, load_batch, prepare_inputs, write_outputs

    batch, digest = load_batch(batch_path)
    result = execute(prepare_inputs(batch, digest), SerialExecutor())
    write_outputs(result, out)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run directory's files (not its task checkpoints)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copy2(p, dst / p.name)
    return dst


def partition_run(src: Path, file_dst: Path, folder_dst: Path, tasks: int = 1, plain_parts: bool = False) -> tuple[Path, Path]:
    """Two copies of a run directory that hold the same tables: in ``file_dst`` each per-scenario table is
    one file, in ``folder_dst`` a folder of part files, as the grid's tasks write them.

    The scenarios (in the order of ``scenarios.parquet``) are cut into ``tasks`` contiguous ranges, one per
    task; a part holds the rows of one task's scenarios of one family (code: the family's place in
    ``risk_metrics``), written by ``reports.write_table`` as ``part-<task>-<code>.parquet``.  The rows of the
    file copy are put in the order of the parts (task, then family), as the layout requires.  Each part
    keeps only the categories it uses (a dictionary of its own); with ``plain_parts``, every other part
    stores its text plainly (no dictionary).  The manifest's ``files`` lists the folders as ``<name>/``.
    """
    from stressgrid import reports

    copy_run(src, file_dst)
    copy_run(src, folder_dst)
    codes = {f: i for i, f in enumerate(dict.fromkeys(pd.read_parquet(src / "risk_metrics.parquet")["family"]))}
    sc = pd.read_parquet(src / "scenarios.parquet")
    task_of = dict(zip(sc["scenario"], np.arange(len(sc)) * tasks // len(sc)))
    for name in reports.PARTITIONED_TABLES:
        if not (src / f"{name}.parquet").is_file():
            continue
        df = pd.read_parquet(src / f"{name}.parquet")
        key = df["scenario"].astype(str).map(task_of).to_numpy() * 10_000 + df["family"].astype(str).map(codes).to_numpy()
        order = np.argsort(key, kind="stable")
        df, key = df.iloc[order].reset_index(drop=True), key[order]
        reports.write_table(name, df, file_dst / f"{name}.parquet")
        (folder_dst / f"{name}.parquet").unlink()
        (folder_dst / name).mkdir()
        for i, k in enumerate(dict.fromkeys(key)):
            part = df[key == k].reset_index(drop=True)
            for c in part.columns:
                if isinstance(part[c].dtype, pd.CategoricalDtype):
                    part[c] = part[c].astype(str) if plain_parts and i % 2 else part[c].cat.remove_unused_categories()
            reports.write_table(name, part, folder_dst / name / reports.part_file_name(int(k // 10_000), int(k % 10_000)))
    m = json.loads((folder_dst / "manifest.json").read_text())
    m["files"] = sorted([p.name for p in folder_dst.glob("*.parquet")]
                        + [f"{p.name}/" for p in folder_dst.iterdir() if p.is_dir() and p.name in reports.PARTITIONED_TABLES])
    (folder_dst / "manifest.json").write_text(json.dumps(m, indent=2))
    return file_dst, folder_dst


def drop_family(src: Path, dst: Path, family: str) -> Path:
    """A copy of a run directory without one scenario family: its rows gone from every table with a
    ``family`` column (``risk_metrics`` included) and from the manifest's scenario count."""
    from stressgrid import reports

    copy_run(src, dst)
    gone = 0
    for path in sorted(dst.glob("*.parquet")):
        df = pd.read_parquet(path)
        if "family" in df.columns:
            if path.stem == "scenarios":
                gone = int((df["family"] == family).sum())
            reports.write_table(path.stem, df[df["family"] != family].reset_index(drop=True), path)
    m = json.loads((dst / "manifest.json").read_text())
    m["counts"]["scenarios"] -= gone
    for key in ("uncovered_factors", "filled_factors"):
        (m.get(key) or {}).pop(family, None)
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    return dst


def _write(df: pd.DataFrame, run_dir: Path, name: str) -> None:
    """Write a table as a run does (the schema's writer: declared types, the version in the metadata)."""
    from stressgrid import reports

    reports.write_table(name, df, run_dir / f"{name}.parquet")


#: the capacity grid a batch gets by default (liquidity.capacity_curve): 20 points from 0.25x to 20x
DEFAULT_AUM_MULTIPLES = tuple(np.geomspace(0.25, 20.0, 20))


def synthetic_capacity(pos: pd.DataFrame, multiples, nav: float = 5e8) -> pd.DataFrame:
    """A capacity table of the book and its sleeves at ``multiples``, in a base and a stress regime:
    days = ceil(1.5 m s), cost = 8 sqrt(m) s bp, with s = 1 (base) or 2 (stress)."""
    cap = []
    for scope, mult in (("base", 1.0), ("stress", 2.0)):
        for m in multiples:
            for level, group in [("book", "book")] + [("sleeve", s) for s in dict.fromkeys(pos["sleeve"])]:
                cap.append(dict(aum_multiple=float(m), nav=nav * m, scope=scope, level=level, group_name=group,
                                days_to_liquidate=int(np.ceil(1.5 * m * mult)), cost=4e4 * m ** 1.5 * mult,
                                cost_bps=8.0 * m ** 0.5 * mult, cvar=2e7 * m, la_cvar=2.1e7 * m * mult ** 0.2,
                                la_cvar_nav=2.1e7 * mult ** 0.2 / nav, drawdown=3e7 * m, la_drawdown=3.2e7 * m * mult ** 0.2,
                                la_drawdown_nav=3.2e7 * mult ** 0.2 / nav))
    return pd.DataFrame(cap)


def add_synthetic_tables(run_dir: Path, seed: int = 3) -> None:
    """Write the optional tables (liquidity, capacity, re-optimisation, drawdown paths, monitoring) into
    a run directory, with the columns and types of ``reports/schema.json`` and values that are consistent
    with the run's positions and VaR/CVaR (for the layout, not as figures to check)."""
    rng = np.random.default_rng(seed)
    pos = pd.read_parquet(run_dir / "positions.parquet")
    rm = pd.read_parquet(run_dir / "risk_metrics.parquet")
    sc = pd.read_parquet(run_dir / "scenarios.parquet")
    fams = list(dict.fromkeys(rm["family"]))
    n = len(pos)

    w = rng.dirichlet(np.ones(n))
    rows = []
    for fam in fams[:2]:
        new = rng.dirichlet(np.ones(n))
        for i, p in pos.iterrows():
            rows.append(dict(family=fam, method="min_cvar", case_name="min_cvar", position_id=p["position_id"], asset_class=p["asset_class"], sleeve=p["sleeve"],
                             weight_current=w[i], weight_new=new[i], trade=new[i] - w[i]))
    pd.DataFrame(rows).pipe(_write, run_dir, "reoptimisation_weights")
    ro = []
    for fam in fams[:2]:
        cvar = float(rm[(rm.family == fam) & (rm.metric == "cvar") & (rm.confidence == 0.99)]["value"].iloc[0])
        var = float(rm[(rm.family == fam) & (rm.metric == "var") & (rm.confidence == 0.99)]["value"].iloc[0])
        ro.append(dict(family=fam, method="min_cvar", case_name="min_cvar", status="optimal", alpha=0.99, cvar_before=cvar, cvar_after=0.7 * cvar,
                       var_before=var, var_after=0.7 * var, base_cvar_before=0.5 * cvar, base_cvar_after=0.45 * cvar,
                       turnover=0.4, cost=12_000.0, message=None))
    pd.DataFrame(ro).astype({"message": "string"}).pipe(_write, run_dir, "reoptimisation")
    factors = ["equity", "rates"]
    fe = [dict(family=fams[0], level="position", name=p["position_id"], factor=f, method=m,
               loading=float(rng.normal()), t_stat=float(rng.normal()) if m == "ols" else np.nan, r2=0.5,
               penalty=0.0 if m == "ols" else 1e-4, n_observations=250)
          for _, p in pos.iterrows() for m in ("lasso", "ridge", "ols") for f in factors]
    pd.DataFrame(fe).astype({"n_observations": "int64"}).pipe(_write, run_dir, "factor_exposures")
    ex = [dict(family=fam, method="min_cvar", case_name="min_cvar", factor=f, target=np.nan, exposure_before=0.5,
               exposure_after=0.4, risk_budget=np.nan, risk_share_before=0.5, risk_share_after=0.5)
          for fam in fams[:2] for f in factors]
    pd.DataFrame(ex).pipe(_write, run_dir, "reoptimisation_exposures")

    liq = []
    for scope, mult in (("base", 1.0), ("stress", 2.5)):
        days = np.ceil(rng.uniform(0.2, 4.0, n) * mult).astype(np.int64)
        value = rng.uniform(1e6, 2e7, n)
        cost = value * rng.uniform(1, 20, n) * mult / 1e4
        liq.append(pd.DataFrame({"scope": scope, "level": "position", "group_name": pos["position_id"], "asset_class": pos["asset_class"],
                                 "sleeve": pos["sleeve"], "value": value, "days": days, "spread_cost": cost / 2,
                                 "impact_cost": cost / 2, "cost": cost}))
        for level in ("asset_class", "sleeve"):
            for g, idx in pos.groupby(level).groups.items():
                liq.append(pd.DataFrame({"scope": [scope], "level": [level], "group_name": [g], "asset_class": [None], "sleeve": [None],
                                         "value": [value[idx].sum()], "days": [days[idx].max()], "spread_cost": [cost[idx].sum() / 2],
                                         "impact_cost": [cost[idx].sum() / 2], "cost": [cost[idx].sum()]}))
        liq.append(pd.DataFrame({"scope": [scope], "level": ["book"], "group_name": ["book"], "asset_class": [None], "sleeve": [None],
                                 "value": [value.sum()], "days": [days.max()], "spread_cost": [cost.sum() / 2],
                                 "impact_cost": [cost.sum() / 2], "cost": [cost.sum()]}))
    lq = pd.concat(liq, ignore_index=True)
    lq["cost_bps"] = 1e4 * lq["cost"] / lq["value"]
    lq["asset_class"] = lq["asset_class"].astype("string")
    lq["sleeve"] = lq["sleeve"].astype("string")
    lq.pipe(_write, run_dir, "liquidation")

    synthetic_capacity(pos, (0.5, 1.0, 2.0, 4.0, 8.0)).pipe(_write, run_dir, "capacity")

    la = []
    for fam in fams:
        for a in (0.95, 0.99):
            g = rm[(rm.family == fam) & (rm.confidence == a)]
            var = float(g[g.metric == "var"]["value"].iloc[0])
            cvar = float(g[g.metric == "cvar"]["value"].iloc[0])
            la.append(dict(family=fam, alpha=a, var=var, cvar=cvar, la_var=1.05 * var, la_cvar=1.08 * cvar,
                           exit_cost_mean=1e5, exit_cost_tail=2e5))
    pd.DataFrame(la).pipe(_write, run_dir, "la_risk")

    dd, paths = [], []
    for fam in fams:
        worst = sc[sc.family == fam].nsmallest(3, "pnl")
        for _, r in worst.iterrows():
            H = 10
            steps = rng.normal(r["pnl"] / H, abs(r["pnl"]) / 20, H)
            cum = np.concatenate([[0.0], np.cumsum(steps)])
            cum[-1] = r["pnl"]
            costs = np.linspace(0, 0.02 * abs(r["pnl"]), H + 1)
            la_cum = cum - costs
            draw = float(np.max(np.maximum.accumulate(cum) - cum))
            la_draw = float(np.max(np.maximum.accumulate(la_cum) - la_cum))
            dd.append(dict(scenario=r["scenario"], family=fam, drawdown=draw, la_drawdown=la_draw, static_drawdown=draw,
                           unwind_cost=costs[-1], pending_cost=0.0, unwind_days=np.int64(H), holding_end=0.0))
            paths.append(pd.DataFrame({"family": fam, "scenario": r["scenario"], "day": np.arange(H + 1, dtype=np.int64),
                                       "pnl": cum, "la_pnl": la_cum}))
    pd.DataFrame(dd).pipe(_write, run_dir, "la_drawdown")
    pd.concat(paths, ignore_index=True).pipe(_write, run_dir, "drawdown_paths")

    dates = pd.date_range("2017-01-02", periods=5, freq="B")
    pd.DataFrame({"model": ["hist_10d"] * 2, "confidence": [0.95, 0.99], "observations": [250, 250],
                  "exceedances": [14, 4], "kupiec_pvalue": [0.62, 0.48]}).pipe(_write, run_dir, "var_backtest")
    pd.DataFrame({"date": dates, "signal": "vol_regime", "value": rng.normal(size=5)}).pipe(_write, run_dir, "signals")
    pd.DataFrame({"date": dates[:2], "rule": ["vix_above_30", "drawdown_5pct"], "signal": [["vix"], ["drawdown", "vol_regime"]],
                  "action": ["de-risk 20%", "alert"]}).pipe(_write, run_dir, "rules_fired")
    pd.DataFrame({"rule": [0, 1], "kind": ["boost", "overlay"], "position_id": [None, "OVERLAY_1"],
                  "gross_before": [1e8, 1.2e8], "gross_after": [1.2e8, 1.21e8], "vol_before": [0.10, 0.12],
                  "vol_after": [0.12, 0.11], "var_before": [0.015, 0.018], "var_after": [0.018, 0.016],
                  "cvar_before": [0.02, 0.024], "cvar_after": [0.024, 0.021], "confidence": [0.99, 0.99],
                  "history_days": [1250, 1250], "trade_cost": [2.0e4, 1.0e3], "premium": [None, 5e5],
                  "carry_cost": [None, 8e4], "carry_days": [None, 20], "bound": ["gross", None]}
                 ).astype({"position_id": "string", "bound": "string", "carry_days": "Int64"}).pipe(_write, run_dir, "rules_impact")
    pd.DataFrame({"date": dates, "forecaster": "ewma", "qlike": rng.uniform(0.1, 0.3, 5)}).pipe(_write, run_dir, "walk_forward")
    pd.DataFrame({"forecaster": ["ewma", "garch"], "role": ["champion", "challenger"], "metric": ["qlike", "qlike"],
                  "value": [0.21, 0.24]}).pipe(_write, run_dir, "champion_challenger")
    pd.DataFrame({"date": pd.to_datetime(["2016-01-29", "2016-02-29"] * 2), "forecaster": ["sample"] * 2 + ["ewma"] * 2,
                  "role": ["champion"] * 2 + ["challenger"] * 2, "error": [0.21, 0.25, 0.23, 0.2],
                  "rolling_error": [np.nan, 0.23, np.nan, 0.215], "window_steps": 2}).pipe(_write, run_dir, "correlation_drift")
    pd.DataFrame({"regime": ["historical", "risk_off", "risk_on", "latest"], "correlation": [-0.2, 0.3, -0.4, -0.1],
                  "erc_equity": [0.3, 0.25, 0.35, 0.3], "erc_bond": [0.9, 0.7, 1.0, 0.9]}).pipe(_write, run_dir, "regime_view")

    pd.DataFrame({"family": fams, "base": fams[0], "parameter": "horizon_days", "value": ["10"] * len(fams),
                  "value_number": [10.0] * len(fams)}).pipe(_write, run_dir, "sweeps")

    m = json.loads((run_dir / "manifest.json").read_text())
    m["files"] = sorted(p.name for p in run_dir.glob("*.parquet"))
    (run_dir / "manifest.json").write_text(json.dumps(m, indent=2))


CHROMIUM = Path("/usr/bin/chromium")


def chromium(url: str, *args: str, user_data_dir: Path, timeout: float = 60.0) -> str:
    """Run headless Chromium on ``url`` (no network, no profile of its own) and return its standard output."""
    import subprocess

    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout
