"""Constraints: validation messages, ADV caps, the compiled system, the infeasibility diagnosis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressgrid.core import ConfigError
from stressgrid.portfolios import Constraints, FactorBand, adv_caps, compile_constraints, diagnose_infeasibility


def test_adv_caps_closed_form():
    # 10% of 2m shares/day over 5 days at $50 on a $1bn book: 1e6 shares = $50m = 5% of NAV
    caps = adv_caps(1e9, 50.0, 2e6, 0.10, 5)
    assert caps == pytest.approx([0.05], rel=1e-15)
    # commodity future: 4% of 10,000 contracts/day x 3 days, $80 x 1,000 per contract, ADV cut by 50%
    caps = adv_caps(1e9, np.array([80.0 * 1000]), np.array([1e4]), 0.04, 3, adv_mult=0.5)
    assert caps == pytest.approx([0.04 * 1e4 * 0.5 * 3 * 8e4 / 1e9], rel=1e-15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nav=0), "nav"),
        (dict(horizon_days=-1), "horizon_days"),
        (dict(adv=np.array([1.0, -2.0])), "adv"),
        (dict(participation=1.5), "participation"),
    ],
)
def test_adv_caps_rejects_bad_input(kwargs, match):
    args = dict(nav=1e6, price_value_per_unit=10.0, adv=np.array([1.0, 2.0]), participation=0.1, horizon_days=1)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        adv_caps(**args)


@pytest.mark.parametrize(
    "cs, match",
    [
        (Constraints(lower=[0, 0]), r"constraints.lower: expected 3 values"),
        (Constraints(lower=0.5, upper=0.2), r"constraints.lower\[0\]: above upper"),
        (Constraints(max_position=[-0.1, 0.2, 0.3]), r"constraints.max_position\[0\]"),
        (Constraints(budget=1.0, net_bounds=(0, 1)), "net_bounds"),
        (Constraints(max_gross=-1), "max_gross"),
        (Constraints(group_bounds={"ac": {"eq": (0, 1)}}), "groups"),
        (Constraints(groups={"ac": ["eq", "eq"]}), r"constraints.groups\['ac'\]"),
        (Constraints(groups={"ac": ["eq", "eq", "fi"]}, group_bounds={"ac": {"cmd": (0, 1)}}), "no position has label 'cmd'"),
        (Constraints(groups={"ac": ["eq", "eq", "fi"]}, group_bounds={"ac": {"eq": (0.5, 0.1)}}), "lo must not exceed hi"),
        (Constraints(frozen=[5]), "frozen"),
        (Constraints(factor=FactorBand(np.ones((2, 1)), 0, 1)), r"factor.loadings: expected shape \(3, K\)"),
        (Constraints(factor=FactorBand(np.ones((3, 2)), [0, 0, 0], 1)), "factor.lower"),
        (Constraints(factor=FactorBand(np.ones((3, 1)), 1, 0)), r"factor.lower\[0\]: above upper"),
    ],
)
def test_validation_names_field_and_value(cs, match):
    with pytest.raises(ConfigError, match=match):
        compile_constraints(cs, 3, np.full(3, 1 / 3))


def test_current_book_is_required_by_turnover_trade_caps_and_frozen():
    for cs, field in [(Constraints(max_turnover=0.1), "max_turnover"), (Constraints(max_trade=0.1), "max_trade"),
                      (Constraints(frozen=[0]), "frozen"), (Constraints(turnover_penalty=0.01), "turnover_penalty")]:
        with pytest.raises(ConfigError, match=f"current_weights: required by constraints.{field}"):
            compile_constraints(cs, 3, None)


def test_compiled_system_encodes_each_constraint():
    w0 = np.array([0.5, 0.3, 0.2])
    cs = Constraints(
        budget=1.0, lower=-1, upper=1, max_gross=1.4, max_turnover=0.4, turnover_penalty=0.01,
        groups={"ac": ["eq", "eq", "fi"]}, group_bounds={"ac": {"eq": (0.4, 0.9)}},
        max_position=[0.6, 0.6, 0.6], max_trade=[0.3, 0.3, 0.0], frozen=[],
        factor=FactorBand(np.array([[1.0], [0.5], [0.0]]), lower=0.3, upper=0.8),
    )
    s = compile_constraints(cs, 3, w0)
    assert s.n_x == 9  # w, t (gross), d (turnover)
    ok = np.array([0.6, 0.2, 0.2])
    assert max(s.check(ok).values()) == 0.0
    assert s.check(np.array([0.7, 0.1, 0.2]))["bounds/caps"] == pytest.approx(0.1)   # cap 0.6
    assert s.check(np.array([0.5, 0.5, 0.0]))["bounds/caps"] == pytest.approx(0.2)   # trade cap 0 on #3
    assert s.check(np.array([0.2, 0.5, 0.3]))["bounds/caps"] > 0                      # trade cap 0.3 on #1
    assert s.check(np.array([0.4, 0.4, 0.4]))["budget"] == pytest.approx(0.2)
    assert s.check(np.array([0.45, -0.05, 0.6]))["groups"] == pytest.approx(0.0)
    bad_group = np.array([0.2, 0.15, 0.65])
    assert s.check(bad_group)["groups"] == pytest.approx(0.05)
    # turnover: |0.3| + |0.05| + |0.25| = 0.6 > 0.4
    assert s.check(np.array([0.8, 0.25, -0.05]))["turnover"] == pytest.approx(0.6 - 0.4)
    assert s.cost[s.d_slice] == pytest.approx([0.01] * 3)


def test_frozen_positions_keep_their_current_weight_even_outside_limits():
    w0 = np.array([0.5, 0.3, 0.2])
    s = compile_constraints(Constraints(upper=0.4, frozen=np.array([True, False, False])), 3, w0)
    assert s.col_lo[0] == s.col_hi[0] == 0.5
    assert s.col_hi[1] == 0.4


@pytest.mark.parametrize(
    "cs, family",
    [
        (Constraints(max_position=0.2), "position_caps"),
        (Constraints(upper=0.2), "bounds"),
        (Constraints(groups={"ac": ["a", "a", "b", "b"]}, group_bounds={"ac": {"a": (0.0, 0.1), "b": (0.0, 0.1)}}), "groups"),
        (Constraints(lower=-1, max_gross=0.5), "gross"),
        (Constraints(factor=FactorBand(np.ones((4, 1)), 2.0, 3.0)), "factor"),
    ],
)
def test_diagnosis_finds_the_single_binding_family(cs, family):
    d = diagnose_infeasibility(cs, 4, None)
    assert not d.feasible
    assert family in d.binding
    assert family in d.message


def test_diagnosis_of_a_frozen_position_against_a_group_limit():
    w0 = np.array([0.7, 0.1, 0.1, 0.1])
    # the frozen position is 70% of the book but its group allows 50%: unfreeze it or widen the group
    cs = Constraints(groups={"g": ["x", "y", "y", "y"]}, group_bounds={"g": {"x": (0.0, 0.5)}}, frozen=[0])
    d = diagnose_infeasibility(cs, 4, w0)
    assert set(d.binding) == {"groups", "frozen"}
    assert "relaxing any one of" in d.message
    # with a turnover limit too small to sell 20%, unfreezing alone no longer helps
    cs = Constraints(groups={"g": ["x", "y", "y", "y"]}, group_bounds={"g": {"x": (0.0, 0.5)}}, frozen=[0],
                     max_turnover=0.05)
    assert diagnose_infeasibility(cs, 4, w0).binding == ("groups",)


def test_diagnosis_reports_pairs_when_no_single_family_suffices():
    # two independent conflicts: caps of 20% cannot fill a budget of 1, and a group of two positions
    # bounded at 40% each cannot reach its floor of 90%; any single relaxation leaves one of them
    cs = Constraints(upper=0.4, max_position=0.2, groups={"g": ["x", "x", "y", "y"]},
                     group_bounds={"g": {"x": (0.9, 1.0)}})
    d = diagnose_infeasibility(cs, 4, None)
    assert set(d.binding) == {"budget+groups", "position_caps+groups", "bounds+position_caps"}
    assert d.message.startswith("infeasible constraints: no single family relaxed restores feasibility")
    assert "[position_caps and groups]" in d.message


def test_feasible_constraints_are_reported_feasible():
    assert diagnose_infeasibility(Constraints(), 3).feasible


@settings(max_examples=25, deadline=None)
@given(lo=st.floats(-1, 0.2), width=st.floats(0.0, 1.0), n=st.integers(1, 8))
def test_box_and_budget_feasibility_matches_the_arithmetic(lo, width, n):
    """Fully invested with bounds [lo, lo+width] is feasible iff n*lo <= 1 <= n*(lo+width)."""
    cs = Constraints(lower=lo, upper=lo + width)
    feasible = n * lo <= 1 + 1e-9 and n * (lo + width) >= 1 - 1e-9
    if abs(n * lo - 1) < 1e-6 or abs(n * (lo + width) - 1) < 1e-6:
        return  # on the edge the answer depends on the tolerance
    assert diagnose_infeasibility(cs, n).feasible == feasible
