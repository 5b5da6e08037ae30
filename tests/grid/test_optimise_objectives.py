"""The batch's ``optimise`` section with ``objective: risk_parity`` and ``hrp``: long-short books re-scaled
along their signs, budgets per position or group met (recomputed from the run's own position-level
P&L), binding constraints named, the tables and the report, and bad settings as one line, exit 2."""

import numpy as np
import pytest
from click.testing import CliRunner

from stressgrid import reports
from stressgrid.cli import main
from stressgrid.core import ConfigError
from stressgrid.grid import SerialExecutor, execute, run_batch, write_outputs
from section_helpers import BOOT, DATA, section_batch, section_inputs



def _batch(optimise: str) -> str:
    """The section batch with a bootstrap family and the ``optimise`` section's lines."""
    return section_batch("obj", "2014-03-29",
                         BOOT + "optimise:\n" + "".join(f"  {line}\n" for line in optimise.strip().splitlines()))


RP_GROUPS = _batch("""
base_family: hist_10d
families: [boot, hist_10d]
objective: risk_parity
max_gross_multiple: 1.2
risk_budget: {level: sleeve, budgets: {trend: 3, value: 1}}
""")


def _returns(inputs, res, family):
    """Per-unit-weight returns of the family ``[S, N]`` and its probabilities, from the run's P&L."""
    fam = np.asarray(inputs.scenarios.family) == family
    w = res.tables["reoptimisation_weights"]
    cur = w[(w.family == family)].set_index("position_id")["weight_current"]
    ids = list(inputs.book.positions["id"])
    nav = 50_000_000.0
    R = res.pnl[fam] / (cur.loc[ids].to_numpy() * nav)
    p = inputs.scenarios.weights[fam] / inputs.scenarios.weights[fam].sum()
    return R, p


def _vol_shares(R, p, w):
    X = R - p @ R
    cov = X.T @ (X * p[:, None])
    return w * (cov @ w) / (w @ cov @ w)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    inputs = section_inputs(tmp_path_factory.mktemp("rp"), RP_GROUPS)
    return inputs, execute(inputs, SerialExecutor())


def test_grouped_budgets_are_met_on_the_runs_pnl(grouped):
    inputs, res = grouped
    s = res.tables["reoptimisation"]
    assert list(s.family) == ["boot", "hist_10d"] and set(s.method) == {"risk_parity"}
    assert set(s.status) == {"optimal"}
    w = res.tables["reoptimisation_weights"]
    for fam, g in w.groupby("family"):
        R, p = _returns(inputs, res, fam)
        shares = _vol_shares(R, p, g.weight_new.to_numpy())
        np.testing.assert_allclose(shares, g.risk_contribution, atol=1e-10)
        by_sleeve = g.assign(share=shares).groupby("sleeve")[["share", "risk_budget"]].sum()
        np.testing.assert_allclose(by_sleeve.share, [0.75, 0.25], atol=1e-8)  # trend 3 : value 1
        np.testing.assert_allclose(by_sleeve.risk_budget, [0.75, 0.25], atol=1e-14)
        # split equally within a sleeve
        np.testing.assert_allclose(shares[g.sleeve.to_numpy() == "value"], 0.25 / 20, atol=1e-8)
        assert np.array_equal(np.sign(g.weight_new), np.sign(g.weight_current))  # shorts stay short
        assert np.abs(g.weight_new).sum() == pytest.approx(1.2 * np.abs(g.weight_current).sum(), rel=1e-12)


def test_tables_follow_the_schema_and_the_report_shows_them(grouped, tmp_path):
    _, res = grouped
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []
    html = reports.render_report(tmp_path)
    assert "risk_parity" in html and "Tail risk before and after" in html
    part = html.split("Risk budgets and contributions by sleeve")[1]
    assert "75.0%" in part and "25.0%" in part  # trend 3 : value 1, budgets and contributions


def test_binding_turnover_is_named(tmp_path):
    text = _batch("""
families: [boot]
objective: risk_parity
max_turnover: 0.4
""")
    res = execute(section_inputs(tmp_path, text), SerialExecutor())
    s = res.tables["reoptimisation"].iloc[0]
    assert s.status == "constrained" and s.method == "risk_parity"
    assert "the turnover constraints bind" in s.message and "raise constraints.max_turnover" in s.message
    assert s.turnover <= 0.4 + 1e-7


def test_a_family_too_small_for_volatility_parity_falls_back(tmp_path):
    res = execute(section_inputs(tmp_path, _batch("families: [crisis]\nobjective: risk_parity")), SerialExecutor())
    s = res.tables["reoptimisation"].iloc[0]
    assert s.status == "fallback" and "covariance of the 22 positions held is singular" in s.message


def test_hrp_through_run_batch(tmp_path):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch("""
families: [boot]
objective: hrp
hrp: {linkage: ward, optimal_ordering: true}
max_turnover: 0.05
"""))
    out = tmp_path / "out"
    run_batch(tmp_path / "b.yaml", out=out, serial=True)
    import pandas as pd

    s = pd.read_parquet(out / "reoptimisation.parquet")
    w = pd.read_parquet(out / "reoptimisation_weights.parquet")
    assert list(s.method.astype(str)) == ["hrp"] and s.status.iloc[0] == "constraints_violated"
    assert s.message.iloc[0].startswith("HRP takes no constraints; its weights break turnover")
    assert np.array_equal(np.sign(w.weight_new), np.sign(w.weight_current))
    assert np.abs(w.weight_new).sum() == pytest.approx(np.abs(w.weight_current).sum(), rel=1e-12)
    assert w.risk_budget.isna().all() and w.risk_contribution.sum() == pytest.approx(1.0, abs=1e-9)
    assert reports.check_run_dir(out) == []


def test_risk_parity_through_run_batch(tmp_path):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch("families: [boot]\nobjective: risk_parity\nrisk_budget: {measure: vol}"))
    run_batch(tmp_path / "b.yaml", out=tmp_path / "out", serial=True)
    import pandas as pd

    s = pd.read_parquet(tmp_path / "out" / "reoptimisation.parquet")
    w = pd.read_parquet(tmp_path / "out" / "reoptimisation_weights.parquet")
    assert list(s.method.astype(str)) == ["risk_parity"] and s.status.iloc[0] == "optimal"
    np.testing.assert_allclose(w.risk_contribution, 1 / 22, atol=1e-8)


@pytest.mark.parametrize("optimise, match", [
    ("objective: risk_parity\nrisk_budget: {level: desk}", r"optimise.*risk_budget.*level"),
    ("objective: risk_parity\nrisk_budget: {level: sleeve, budgets: {trend: -0.2, value: 1}}",
     r"budgets\['trend'\] must be a positive number \(got -0.2\)"),
    ("objective: min_cvar\nrisk_budget: {level: sleeve}", r"risk_budget applies to objective risk_parity"),
    ("objective: risk_parity\nturnover_penalty: 0.01", r"objective risk_parity takes no turnover_penalty"),
    ("objective: herc\nherc: {n_clusters: 0}", r"n_clusters must be gap, gap_std or a count >= 1 \(got 0\)"),
    ("objective: factor_target", r"objective factor_target needs factor_target.exposures"),
    ("objective: factor_target\nfactor_target: {exposures: {equity: 0.5}}",
     r"field 'optimise': objective factor_target needs the factor_model section"),
    ("objective: risk_parity\nsigns: free", r"objective risk_parity keeps the signs of the book"),
    ("objective: min_cvar\nweight_bounds: [0.1, 0.5]", r"weight_bounds must satisfy low <= 0 <= high, low < high \(got \[0.1, 0.5\]\)"),
    # a reversed group bound failed inside the grid task, exit 4, after the scenarios were drawn
    ("objective: min_cvar\ngroup_bounds: {sleeve: {trend: [1.5, 0.2]}}",
     r"field 'optimise': group_bounds.sleeve.trend must satisfy low <= high \(got \[1.5, 0.2\]\)"),
    ("objective: min_cvar\nscale_bounds: [2, 0]", r"scale_bounds must satisfy 0 <= low <= 1 <= high \(got \[2.0, 0.0\]\)"),
])
def test_bad_settings_are_one_line_exit_2_at_validate(tmp_path, optimise, match):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch(optimise))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output
    import re

    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("budgets, match", [
    ("{level: sleeve, budgets: {trend: 1, macro: 1}}",
     r"field 'optimise.risk_budget.budgets': no sleeve 'macro' in the book"),
    ("{level: sleeve, budgets: {trend: 1}}", r"no budget for sleeves value; give every sleeve held a budget"),
    ("{level: position, budgets: {XX: 1}}", r"no position 'XX' in the book"),
])
def test_budgets_checked_against_the_book_one_line_exit_2(tmp_path, budgets, match):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch(f"families: [boot]\nobjective: risk_parity\nrisk_budget: {budgets}"))
    import re

    for cmd in (["validate"], ["run", "--out", str(tmp_path / "out"), "--serial"]):  # caught before any scenario
        res = CliRunner().invoke(main, [cmd[0], str(tmp_path / "b.yaml"), *cmd[1:]])
        assert res.exit_code == 2, res.output
        lines = [x for x in res.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(match, lines[0]), res.output
    with pytest.raises(ConfigError, match=match):
        execute(section_inputs(tmp_path, _batch(f"families: [boot]\nobjective: risk_parity\nrisk_budget: {budgets}")),
                SerialExecutor())


def test_scale_group_needs_a_group_level():
    from stressgrid.grid._optimise import RiskBudgetSettings

    with pytest.raises(ValueError, match="scale group needs level sleeve or asset_class"):
        RiskBudgetSettings(level="position", scale="group")
    assert RiskBudgetSettings(level="sleeve", scale="group").scale == "group"


def test_sleeves_scaled_as_a_whole_through_the_run(tmp_path):
    """risk_budget.scale group: each sleeve keeps its composition, and the sleeves' volatility shares,
    recomputed from the run's P&L, are their budgets."""
    inputs = section_inputs(tmp_path, RP_GROUPS.replace("budgets: {trend: 3, value: 1}}",
                                                        "budgets: {trend: 3, value: 1}, scale: group}"))
    res = execute(inputs, SerialExecutor())
    w = res.tables["reoptimisation_weights"]
    for fam, g in w.groupby("family"):
        R, p = _returns(inputs, res, fam)
        shares = _vol_shares(R, p, g.weight_new.to_numpy())
        by_sleeve = g.assign(share=shares).groupby("sleeve")["share"].sum()
        np.testing.assert_allclose(by_sleeve, [0.75, 0.25], atol=1e-8)
        ratio = (g.weight_new / g.weight_current).to_numpy()
        for sleeve in ("trend", "value"):
            on = g.sleeve.to_numpy() == sleeve
            np.testing.assert_allclose(ratio[on], ratio[on][0], rtol=1e-12)


def test_net_bounds_and_signs_free_per_position(tmp_path):
    """min_cvar with the book's net exposure in [0.2, 0.3] of NAV and only HD_US free to change side."""
    inputs = section_inputs(tmp_path, _batch("""
families: [boot]
objective: min_cvar
net_bounds: [0.2, 0.3]
signs: [HD_US]
weight_bounds: [-0.2, 0.2]
max_gross_multiple: 2
"""))
    res = execute(inputs, SerialExecutor())
    assert res.tables["reoptimisation"].status.iloc[0] == "optimal"
    w = res.tables["reoptimisation_weights"].set_index("position_id")
    assert 0.2 - 1e-8 <= w.weight_new.sum() <= 0.3 + 1e-8
    assert w.weight_new.between(-0.2 - 1e-9, 0.2 + 1e-9).all()
    others = w.drop(index="HD_US")
    held = others.weight_current != 0
    assert (np.sign(others.weight_new[held]) * np.sign(others.weight_current[held]) >= 0).all()  # no side change
    # a net bound that the other constraints cannot meet names it
    bad = section_inputs(tmp_path, _batch("""
families: [boot]
objective: min_cvar
net_bounds: [5, 6]
fallback: current
"""))
    msg = execute(bad, SerialExecutor()).tables["reoptimisation"].message.iloc[0]
    assert "budget" in msg, msg
    with pytest.raises(ConfigError, match=r"field 'optimise.signs': no position 'XX' in the book"):
        section_inputs(tmp_path, _batch("families: [boot]\nobjective: min_cvar\nsigns: [XX]\nweight_bounds: [-1, 1]"))
