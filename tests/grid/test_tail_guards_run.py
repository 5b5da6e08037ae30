"""Tail guards through a run: implausible moves and GARCH boundaries per family and factor in
``coverage_families``, thin tails in ``risk_metrics`` and ``reoptimisation``, the same tables from a streamed
run, and one warning line each in the terminal summary and ``stressgrid validate``."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import load_history
from stressgrid.grid import run_batch
from stressgrid.reports import check_run_dir, print_summary, tail_warnings

from section_helpers import DATA, read_run_table

PLANTED = "EQ.AMD"


def _batch_text(stream: bool, optimise: bool) -> str:
    text = textwrap.dedent(f"""\
        name: guards
        book: book.csv
        seed: 7
        nav: 50000000
        history: {{path: planted.csv}}
        market:
          as_of: 2017-03-29
        scenarios:
          - kind: historical
            name: pair
            events: [gfc_2008, lehman_2008]
          - kind: montecarlo
            name: fhs
            model: fhs
            window: {{end: 2017-03-29, lookback_days: 500}}
            n_scenarios: 1500
            horizon_days: 10
          - kind: montecarlo
            name: mc_t
            model: student_t
            window: {{end: 2017-03-29, lookback_days: 500}}
            n_scenarios: 4000
            horizon_days: 10
        risk:
          confidence: [0.95, 0.99]
          min_tail_scenarios: 10
        execution:
          executor: serial
          chunk_size: 1200
          stream: {str(stream).lower()}
        outputs:
          scenario_pnl: false
        """)
    if optimise:
        text += textwrap.dedent("""\
            optimise:
              families: [pair, mc_t]
              alpha: 0.95
              max_turnover: 0.4
            """)
    return text


def _write(d: Path, stream: bool, optimise: bool) -> Path:
    """The linear test book, a history of EQ.AMD with one +52% day two days before the as-of date (over
    the bundled history), and the batch."""
    pd.read_csv(DATA / "linear_book.csv").to_csv(d / "book.csv", index=False)
    amd = load_history().levels[PLANTED].dropna().loc[:"2017-03-29"]
    day = amd.index[-3]
    amd.loc[day:] *= 1.52
    amd.rename_axis("date").reset_index().to_csv(d / "planted.csv", index=False)
    p = d / f"b-{stream}-{optimise}.yaml"
    p.write_text(_batch_text(stream, optimise))
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("guards")
    memory = run_batch(_write(d, False, True), d / "memory", serial=True)
    streamed = run_batch(_write(d, True, False), d / "streamed", serial=True)
    return d, memory, streamed


def test_implausible_moves_and_the_garch_boundary_per_family_and_factor(runs):
    d, _, _ = runs
    cf = read_run_table(d / "memory", "coverage_families")
    fhs = cf[cf["family"] == "fhs"].set_index("factor")
    assert fhs["implausible"].sum() > 0
    assert fhs["max_multiple"].idxmax() == PLANTED and fhs.loc[PLANTED, "max_multiple"] > 3
    assert (fhs["guard_multiple"] == 3.0).all() and not fhs["guard_cap"].astype(bool).any()
    assert fhs.loc[PLANTED, "garch_boundary"].startswith("alpha ")
    # every flagged scenario is counted once, at its largest multiple's factor
    sc = read_run_table(d / "memory", "scenarios")
    rows = sc[sc["family"] == "fhs"]
    assert int(fhs["implausible"].sum()) == int((rows["implausible"] > 0).sum())
    assert fhs["max_multiple"].max() == rows["tail_multiple"].max()
    # a family without a guard has nulls
    pair = cf[cf["family"] == "pair"]
    assert pair["implausible"].isna().all() and pair["garch_boundary"].isna().all()
    assert sc.loc[sc["family"] == "pair", "implausible"].isna().all()
    assert check_run_dir(d / "memory") == [] and check_run_dir(d / "streamed") == []


def test_a_two_scenario_family_has_a_thin_tail_and_a_4000_scenario_one_has_not(runs):
    d, _, _ = runs
    rm = read_run_table(d / "memory", "risk_metrics")
    tail = rm[rm["metric"].isin(["var", "cvar"])].set_index(["family", "metric", "confidence"])
    for a in (0.95, 0.99):
        assert tail.loc[("pair", "cvar", a), "tail_scenarios"] == 1 and tail.loc[("pair", "cvar", a), "thin_tail"]
        k = int(np.ceil(round((1 - a) * 4000, 9)))
        assert tail.loc[("mc_t", "cvar", a), "tail_scenarios"] == k and not tail.loc[("mc_t", "cvar", a), "thin_tail"]
    assert tail.loc[("fhs", "cvar", 0.99), "tail_scenarios"] == 15
    assert rm.loc[~rm["metric"].isin(["var", "cvar"]), "tail_scenarios"].isna().all()


def test_a_reoptimisation_on_a_thin_tail_is_not_reported_as_a_plain_optimum(runs):
    d, _, _ = runs
    ro = read_run_table(d / "memory", "reoptimisation").set_index("family")
    assert bool(ro.loc["pair", "thin_tail"]) and ro.loc["pair", "tail_scenarios"] == 1
    assert "thin tail" in ro.loc["pair", "message"] and "1 scenario," in ro.loc["pair", "message"]
    assert not bool(ro.loc["mc_t", "thin_tail"]) and ro.loc["mc_t", "tail_scenarios"] == 200
    assert "thin tail" not in (ro.loc["mc_t", "message"] or "")


def test_a_streamed_run_writes_the_same_guard_and_tail_columns(runs):
    d, _, _ = runs
    for name, key in (("coverage_families", ["family", "factor"]), ("risk_metrics", ["family", "metric", "confidence"]),
                      ("scenarios", ["scenario"])):
        a = read_run_table(d / "memory", name).sort_values(key).reset_index(drop=True)
        b = read_run_table(d / "streamed", name).sort_values(key).reset_index(drop=True)
        cols = [c for c in a.columns if c in ("implausible", "max_multiple", "guard_multiple", "guard_cap", "garch_boundary",
                                             "tail_multiple", "tail_factor", "tail_scenarios", "thin_tail")]
        pd.testing.assert_frame_equal(a[key + cols], b[key + cols], check_dtype=False, check_exact=True, obj=name)
    assert (d / "streamed" / "scenarios").is_dir()


def test_the_terminal_prints_one_warning_line_per_finding(runs):
    d, _, _ = runs
    from rich.console import Console

    buf = io.StringIO()
    print_summary(d / "memory", Console(file=buf, width=400, highlight=False))
    text = buf.getvalue()
    warnings = [line for line in text.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: " + w for w in tail_warnings(d / "memory")]
    implausible = [w for w in warnings if "beyond 3x its historical extreme" in w]
    families = [w.split(": ")[1] for w in implausible]
    assert "fhs" in families and len(set(families)) == len(families) and "pair" not in families
    assert f"worst {PLANTED} x" in implausible[families.index("fhs")]
    garch = [w for w in warnings if "GARCH fit at a boundary" in w]
    assert len(garch) == 1 and f"{PLANTED} (alpha " in garch[0]
    thin = [w for w in warnings if w.startswith("warning: CVaR rests on")]
    assert len(thin) == 1 and "pair (99%: 1, 95%: 1)" in thin[0] and "mc_t" not in thin[0]
    reopt = [w for w in warnings if "re-optimisation on a thin tail" in w]
    assert len(reopt) == 1 and "pair (1 scenario at 95%)" in reopt[0] and "mc_t" not in reopt[0]


def test_validate_warns_before_the_run(runs, tmp_path):
    from click.testing import CliRunner

    from stressgrid.cli import main

    p = _write(tmp_path, False, False)
    res = CliRunner().invoke(main, ["validate", str(p)])
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if x.startswith("warning:")]
    assert any(x.startswith("warning: fhs: GARCH fit at a boundary") and PLANTED in x for x in lines)
    assert any(x.startswith("warning: fhs: ") and "beyond 3x" in x for x in lines)
    assert any("fewer than 10 tail scenarios" in x and "pair (99%: 1, 95%: 1)" in x and "mc_t" not in x for x in lines)
