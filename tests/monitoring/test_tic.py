"""The theory-implied correlation forecaster (``tic``): hand-computed cases, a step-by-step twin of
López de Prado's (2019) algorithm, the shrinkage ends, PSD repair, the correlation matrix distance, the
tree from the factor grammar, a mapping or a file, and its place in the walk-forward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import squareform

from stressgrid.core import ConfigError, DataError
from stressgrid.monitoring import (
    FORECASTERS,
    ForecasterSpec,
    TICCov,
    correlation_matrix_distance,
    make_forecaster,
    run_walk_forward,
    tic_correlation,
)

from monitoring_helpers import synthetic_returns

MIXED = ["EQ.SPX", "FX.EURUSD", "EQ.NDX", "FX.JPYUSD", "CMD.WTI"]


def _returns(columns, T=300, seed=0, a=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    K = len(columns)
    a = rng.standard_normal((K, K)) * 0.4 + np.eye(K) if a is None else a
    x = rng.standard_normal((T, K)) @ a.T * 0.01
    return pd.DataFrame(x, index=pd.bdate_range("2015-01-01", periods=T), columns=columns)


def _corr(x: pd.DataFrame) -> np.ndarray:
    return np.corrcoef(x.to_numpy(), rowvar=False)


def _is_correlation(r: np.ndarray) -> bool:
    return (np.array_equal(r, r.T) and np.array_equal(np.diag(r), np.ones(len(r)))
            and np.linalg.eigvalsh(r).min() >= -1e-12)


# -- the algorithm ---------------------------------------------------------------------------------

def test_three_assets_by_hand():
    # A and B share a group, C is alone; d = sqrt((1 - rho) / 2).  {A, B} join at d_AB, so rho_AB is
    # kept; the group joins C at the mean of d_AC and d_BC: rho = 1 - 2 ((sqrt(.4) + sqrt(.3)) / 2)^2
    # = 1 - (0.7 + 2 sqrt(.12)) / 2 = 0.65 - sqrt(0.12)
    rho = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.4], [0.2, 0.4, 1.0]])
    got = tic_correlation(rho, [("g1",), ("g1",), ("g2",)])
    x = 0.65 - np.sqrt(0.12)
    ref = np.array([[1.0, 0.6, x], [0.6, 1.0, x], [x, x, 1.0]])
    assert np.allclose(got, ref, rtol=0, atol=1e-10)
    # a flat tree (each its own group): single linkage joins A, B at d_AB, then C at min(d_AC, d_BC)
    flat = tic_correlation(rho, [("A",), ("B",), ("C",)])
    assert np.allclose(flat, [[1, 0.6, 0.4], [0.6, 1, 0.4], [0.4, 0.4, 1]], rtol=0, atol=1e-10)
    # average linkage on the flat tree is the mean of d, as the grouped tree's second level
    assert np.allclose(tic_correlation(rho, [("A",), ("B",), ("C",)], linkage="average"), ref, rtol=0, atol=1e-10)


def test_four_assets_by_hand_weights_by_leaf_count():
    # {A, B, C} in one group, D alone: single linkage inside the group, then the group joins D at the mean
    # of d over its three leaves (de Prado's updateDist weights a cluster by its number of leaves)
    rho = np.array([
        [1.0, 0.7, 0.5, 0.1],
        [0.7, 1.0, 0.3, 0.2],
        [0.5, 0.3, 1.0, 0.6],
        [0.1, 0.2, 0.6, 1.0],
    ])
    got = tic_correlation(rho, [("g",), ("g",), ("g",), ("h",)])
    d = np.sqrt((1 - rho) / 2)
    # inside the group: A-B at d_AB (rho .7), then C at min(d_AC, d_BC) = d_AC (rho .5)
    x = 1 - 2 * ((d[0, 3] + d[1, 3] + d[2, 3]) / 3) ** 2
    ref = np.array([
        [1.0, 0.7, 0.5, x],
        [0.7, 1.0, 0.5, x],
        [0.5, 0.5, 1.0, x],
        [x, x, x, 1.0],
    ])
    assert np.allclose(got, ref, rtol=0, atol=1e-10)
    # the pairwise mean of d, not of d^2 nor of rho: a different number
    assert abs(x - rho[:3, 3].mean()) > 1e-3


def _de_prado_twin(corr: np.ndarray, levels: list[list[str]]) -> np.ndarray:
    """López de Prado's getLinkage_corr + link2corr, step by step: bottom-up over the levels, each
    parent's children single-linked on the current distance matrix; a merged cluster's distance row is
    the leaf-count-weighted average of its two parts' rows; a lone child is renamed to its parent.
    ``levels[i]`` is the labels of column i, bottom level first (the labels unique across levels)."""
    K = len(corr)
    names = [f"x{i}" for i in range(K)]
    dist = pd.DataFrame(np.sqrt((1 - corr) / 2), index=names, columns=names)
    count = {n: 1 for n in names}
    atoms = {n: [i] for i, n in enumerate(names)}
    tree = pd.DataFrame({"leaf": names, **{f"l{j}": [lv[j] for lv in levels] for j in range(len(levels[0]))}})
    if tree.iloc[:, -1].nunique() > 1:
        tree["All"] = "root"
    out = np.eye(K)
    new = 0
    cols = list(tree.columns)
    for lo, hi in zip(cols[:-1], cols[1:]):
        for cat, grp in tree[[lo, hi]].drop_duplicates(lo).groupby(hi, sort=False):
            kids = grp[lo].tolist()
            if len(kids) == 1:
                k = kids[0]
                dist = dist.rename(index={k: cat}, columns={k: cat})
                count[cat], atoms[cat] = count.pop(k), atoms.pop(k)
                continue
            z = linkage(squareform(dist.loc[kids, kids].to_numpy(), checks=False), method="single")
            local = list(kids)
            for i0, i1, h, _ in z:
                a, b = local[int(i0)], local[int(i1)]
                out[np.ix_(atoms[a], atoms[b])] = out[np.ix_(atoms[b], atoms[a])] = 1 - 2 * h ** 2
                c = f"c{new}"
                new += 1
                row = (dist[a] * count[a] + dist[b] * count[b]) / (count[a] + count[b])
                dist[c] = row
                dist.loc[c] = row
                dist.loc[c, c] = 0.0
                dist = dist.drop(index=[a, b], columns=[a, b])
                count[c], atoms[c] = count.pop(a) + count.pop(b), atoms.pop(a) + atoms.pop(b)
                local.append(c)
            last = local[-1]
            dist = dist.rename(index={last: cat}, columns={last: cat})
            count[cat], atoms[cat] = count.pop(last), atoms.pop(last)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_step_by_step_twin_of_de_prados_algorithm(seed):
    rng = np.random.default_rng(seed)
    K = 12
    x = rng.standard_normal((200, K)) @ (rng.standard_normal((K, K)) * 0.5 + np.eye(K)).T
    rho = np.corrcoef(x, rowvar=False)
    top = rng.integers(0, 3, K)
    mid = [f"m{t}{s}" for t, s in zip(top, rng.integers(0, 2, K))]
    paths = [(f"t{t}", m) for t, m in zip(top, mid)]
    twin = _de_prado_twin(rho, [[m, f"t{t}"] for t, m in zip(top, mid)])
    assert np.allclose(tic_correlation(rho, paths), twin, rtol=0, atol=1e-12)


def test_a_flat_tree_is_single_linkage():
    x = _returns(MIXED, seed=4)
    rho = _corr(x)
    d = np.sqrt((1 - rho) / 2)
    ref = 1 - 2 * squareform(cophenet(linkage(squareform(d, checks=False), method="single"))) ** 2
    np.fill_diagonal(ref, 1.0)
    flat = {c: [c] for c in MIXED}
    assert np.allclose(tic_correlation(rho, [flat[c] for c in MIXED]), ref, rtol=0, atol=1e-12)
    f = TICCov(tree=flat, shrinkage=0.0).fit(x)
    assert np.allclose(f.implied_correlation_, ref, rtol=0, atol=1e-12)


# -- the forecaster ----------------------------------------------------------------------------------

def test_shrinkage_one_gives_the_empirical_matrix_and_zero_the_implied_one():
    x = _returns(MIXED, seed=5)
    flat = {c: [c] for c in MIXED}
    f = TICCov(tree=flat, shrinkage=1.0).fit(x)
    assert np.array_equal(f.shrunk_correlation_, f.empirical_correlation_)
    assert np.allclose(f.empirical_correlation_, _corr(x), rtol=0, atol=1e-14)
    assert np.allclose(f.covariance_, np.cov(x.to_numpy(), rowvar=False), rtol=1e-13, atol=0)
    assert f.details_["cmd"] == 0.0 and not f.details_["psd_repaired"]
    # shrinkage 0 is the implied matrix itself (when that is PSD), with the sample vols
    g = TICCov(shrinkage=0.0).fit(x)
    assert not g.details_["psd_repaired"]
    assert np.array_equal(g.shrunk_correlation_, g.implied_correlation_)
    assert g.details_["cmd"] == pytest.approx(g.details_["cmd_implied"], abs=1e-15)
    assert np.allclose(np.diag(g.covariance_), x.var(ddof=1).to_numpy(), rtol=1e-13, atol=0)
    # in between: the convex combination
    h = TICCov(shrinkage=0.25).fit(x)
    assert np.allclose(h.shrunk_correlation_, 0.75 * g.implied_correlation_ + 0.25 * h.empirical_correlation_,
                       rtol=0, atol=1e-14)
    assert g.details_["cmd"] > h.details_["cmd"] > 0.0


def test_a_non_psd_implied_matrix_is_repaired():
    # A ~ C and B ~ D, every other pair uncorrelated: a PSD empirical matrix, but the tree {A, B}, {C, D}
    # averages the cross distances into one cross correlation 1 - 2 ((2 sqrt(.005) + 2 sqrt(.5)) / 4)^2,
    # about 0.70, against 0 inside both groups: eigenvalue 1 - 2 * 0.70 < 0
    rho = np.array([[1, 0, .99, 0], [0, 1, 0, .99], [.99, 0, 1, 0], [0, .99, 0, 1]], dtype=float)
    tic = tic_correlation(rho, [("g",), ("g",), ("h",), ("h",)])
    assert np.linalg.eigvalsh(tic).min() < -0.3
    rng = np.random.default_rng(7)
    z = rng.standard_normal((500, 2))
    e = rng.standard_normal((500, 4)) * 0.1
    x = pd.DataFrame((z[:, [0, 1, 0, 1]] + e) * 0.01, columns=["EQ.A", "EQ.B", "FX.EURUSD", "FX.GBPUSD"])
    for w in (0.0, 0.3):
        f = TICCov(shrinkage=w).fit(x)
        assert f.details_["psd_repaired"] and f.details_["repair_distance"] > 0.1
        assert _is_correlation(f.shrunk_correlation_)
        assert np.linalg.eigvalsh(f.covariance_).min() >= -1e-18


@pytest.mark.parametrize("seed", range(4))
def test_the_result_is_a_correlation_matrix_with_the_sample_vols(seed):
    x = _returns(MIXED, seed=seed)
    f = TICCov().fit(x)
    assert _is_correlation(f.shrunk_correlation_)
    assert np.allclose(np.sqrt(np.diag(f.covariance_)), x.std(ddof=1).to_numpy(), rtol=1e-13, atol=0)
    assert np.allclose(f.correlation_, f.shrunk_correlation_, rtol=0, atol=1e-12)
    assert np.array_equal(f.forecast(10), 10 * f.covariance_)
    assert set(f.details_) == {"shrinkage", "linkage", "cmd", "cmd_implied", "psd_repaired", "repair_distance"}
    assert 0.0 <= f.details_["cmd"] <= f.details_["cmd_implied"] <= 1.0


def test_correlation_matrix_distance():
    r = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert correlation_matrix_distance(r, r) == pytest.approx(0.0, abs=1e-15)
    assert correlation_matrix_distance(r, 3 * r) == pytest.approx(0.0, abs=1e-15)  # scale-free
    # tr(R I) = 2, ||R||_F = sqrt(2.5), ||I||_F = sqrt(2): d = 1 - 2 / sqrt(5)
    assert correlation_matrix_distance(r, np.eye(2)) == pytest.approx(1 - 2 / np.sqrt(5), rel=1e-14)
    # orthogonal matrices are as far apart as can be
    assert correlation_matrix_distance(np.ones((2, 2)), [[1, -1], [-1, 1]]) == pytest.approx(1.0, rel=1e-15)
    # a 3x3 by hand: tr(AB) = 3 + 2 (0.2*0.5 + 0.4*0.1 + 0.3*0.6) = 3.64
    a = np.array([[1, .2, .4], [.2, 1, .3], [.4, .3, 1]])
    b = np.array([[1, .5, .1], [.5, 1, .6], [.1, .6, 1]])
    ref = 1 - 3.64 / np.sqrt((3 + 2 * (.04 + .16 + .09)) * (3 + 2 * (.25 + .01 + .36)))
    assert correlation_matrix_distance(a, b) == pytest.approx(ref, rel=1e-14)
    with pytest.raises(DataError, match="one shape"):
        correlation_matrix_distance(a, np.eye(2))


# -- the tree ----------------------------------------------------------------------------------------

def test_the_default_tree_groups_by_asset_class():
    # EQ.SPX moves with FX.EURUSD far more than with EQ.NDX, but the theory puts the two indices together
    K = len(MIXED)
    a = np.eye(K)
    a[1, 0] = 3.0  # FX.EURUSD loads on EQ.SPX's shock
    x = _returns(MIXED, seed=3, a=a)
    rho = _corr(x)
    f = TICCov(shrinkage=0.0).fit(x)
    assert f.paths_ == {"EQ.SPX": ("EQ",), "FX.EURUSD": ("FX",), "EQ.NDX": ("EQ",), "FX.JPYUSD": ("FX",),
                        "CMD.WTI": ("CMD",)}
    t = f.implied_correlation_
    eq, fx = [0, 2], [1, 3]
    # a two-member group keeps its own correlation ...
    assert t[0, 2] == pytest.approx(rho[0, 2], abs=1e-12) and t[1, 3] == pytest.approx(rho[1, 3], abs=1e-12)
    # ... and every EQ-FX pair gets the one correlation at which the groups join; CMD joins the root
    cross = t[np.ix_(eq, fx)]
    assert np.ptp(cross) == 0.0 and np.ptp(t[4, :4]) == 0.0
    # the strong SPX-EURUSD pair does not survive the theory (single linkage alone would keep it)
    assert rho[0, 1] > 0.9 and cross[0, 0] < 0.6
    flat = TICCov(tree={c: [c] for c in MIXED}, shrinkage=0.0).fit(x).implied_correlation_
    assert flat[0, 1] == pytest.approx(rho[0, 1], abs=1e-12)


def test_a_mapping_a_file_and_labels_as_paths(tmp_path):
    x = _returns(MIXED, seed=8)
    tree = {"EQ.SPX": ["risky", "us"], "EQ.NDX": ["risky", "us"], "FX.EURUSD": ["fx", "g10"],
            "FX.JPYUSD": ["fx", "g10"], "CMD.WTI": ["risky", "energy"], "EQ.UNUSED": ["risky", "eu"]}
    a = TICCov(tree=tree, shrinkage=0.0).fit(x)
    f = tmp_path / "tree.csv"
    f.write_text("factor,class,region\n" + "".join(f"{k},{v[0]},{v[1]}\n" for k, v in tree.items()))
    b = TICCov(tree_file=str(f), shrinkage=0.0).fit(x)
    assert b.paths_ == a.paths_ and np.array_equal(a.implied_correlation_, b.implied_correlation_)
    ref = tic_correlation(_corr(x), [tuple(tree[c]) for c in MIXED])
    assert np.allclose(a.implied_correlation_, ref, rtol=0, atol=1e-12)
    # a label belongs to its parent: 'us' under 'fx' is not 'us' under 'risky'
    same = {**tree, "FX.EURUSD": ["fx", "us"], "FX.JPYUSD": ["fx", "us"]}
    assert np.array_equal(TICCov(tree=same, shrinkage=0.0).fit(x).implied_correlation_, a.implied_correlation_)
    # a copy keeps the settings
    c = make_forecaster(b)
    assert c.tree_file == str(f) and c.shrinkage == 0.0


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_tree_errors_are_one_line_and_named(tmp_path):
    x = _returns(MIXED, seed=9)
    with pytest.raises(ConfigError, match=r"column 'CMD.WTI' is not in the tree") as e:
        TICCov(tree={c: ["a"] for c in MIXED[:4]}).fit(x)
    _one_line(e)
    f = tmp_path / "t.csv"
    f.write_text("factor,class\nEQ.SPX,eq\nEQ.NDX,eq\nFX.EURUSD,fx\nFX.JPYUSD,fx\n")
    with pytest.raises(ConfigError, match=r"tree file .*t\.csv: column 'CMD.WTI' is not in the tree") as e:
        TICCov(tree_file=str(f)).fit(x)
    _one_line(e)
    bad = {
        "factor,class\nEQ.SPX,eq\nEQ.NDX\n": r"t\.csv, line 3: 1 fields, expected 2",
        "factor,class\nEQ.SPX,eq\nEQ.NDX, \n": r"t\.csv, line 3, field 'class': empty label for 'EQ.NDX'",
        "factor,class\nEQ.SPX,eq\nEQ.SPX,fx\n": r"t\.csv, line 3, field 'factor': 'EQ.SPX' is already on line 2",
        "name,class\nEQ.SPX,eq\n": r"t\.csv, line 1: the first column must be 'factor' \(got 'name'\)",
        "factor,class,class\nEQ.SPX,eq,x\n": r"column 'class' appears twice",
        "factor,class\n": r"a header and no factors",
        "": r"empty",
    }
    for text, msg in bad.items():
        f.write_text(text)
        with pytest.raises(ConfigError, match=msg) as e:
            TICCov(tree_file=str(f))
        _one_line(e)
    with pytest.raises(ConfigError, match=r"'tree_file': '.*nope\.csv': not found"):
        TICCov(tree_file=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match=r"factor 'EQ.SPX', level 2: expected a label .*got False"):
        TICCov(tree={"EQ.SPX": ["eq", False]})
    with pytest.raises(ConfigError, match=r"field 'tree': expected a mapping"):
        TICCov(tree=["EQ.SPX"])
    with pytest.raises(ConfigError, match="not both"):
        TICCov(tree={"EQ.SPX": ["eq"]}, tree_file=str(f))
    # the default tree needs factor names
    with pytest.raises(ConfigError, match=r"column '0' is not a factor name"):
        TICCov().fit(np.random.default_rng(0).standard_normal((30, 2)))


def test_settings_are_checked():
    for bad in (1.5, -0.1, True, "half", float("nan")):
        with pytest.raises(ConfigError, match=r"'shrinkage'.*\(got "):
            TICCov(shrinkage=bad)
    with pytest.raises(ConfigError, match=r"'linkage'.*\(got 'ward'\)"):
        TICCov(linkage="ward")


# -- by name, and in the walk-forward ----------------------------------------------------------------

def test_registered_and_built_by_name(tmp_path):
    assert FORECASTERS["tic"] is TICCov
    spec = ForecasterSpec.model_validate({"name": "tic", "shrinkage": 0.2, "label": "tic20",
                                          "tree": {"EQ.SPX": ["eq"], "FX.EURUSD": ["fx"]}})
    f = spec.build()
    assert isinstance(f, TICCov) and f.shrinkage == 0.2 and spec.key == "tic20"
    assert make_forecaster("tic").get_params() == {"tree": None, "tree_file": None, "shrinkage": 0.5,
                                                     "linkage": "single"}
    with pytest.raises(ConfigError, match=r"forecaster .*'shrinkage'.*\(got 2\)"):
        make_forecaster({"name": "tic", "shrinkage": 2})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) weight of 'tic'; it takes tree, tree_file, shrinkage, linkage"):
        make_forecaster({"name": "tic", "weight": 0.5})
    with pytest.raises(ConfigError, match=r"line 2: 1 fields"):
        bad = tmp_path / "bad.csv"
        bad.write_text("factor,class\nEQ.SPX\n")
        make_forecaster({"name": "tic", "tree_file": str(bad)})


def test_in_the_walk_forward():
    r = synthetic_returns(T=260, K=4)
    r.columns = ["EQ.SPX", "EQ.NDX", "FX.EURUSD", "IR.USD.10Y"]
    specs = ["sample", "tic", {"name": "tic", "shrinkage": 1.0, "label": "tic_emp"},
             {"name": "tic", "shrinkage": 0.0, "label": "tic_pure", "tree": {c: [c[:2]] for c in r.columns}}]
    res = run_walk_forward(r, specs, train=100, horizon=10, roll=50, keep_forecasts=True, methods=())
    assert set(res.errors["forecaster"]) == {"sample", "tic", "tic_emp", "tic_pure"}
    assert np.isfinite(res.errors[["cov_error", "corr_error", "qlike", "gmv_variance"]].to_numpy()).all()
    dates = sorted({d for d, _ in res.forecasts})
    assert len(dates) == 4
    for d in dates:
        # weight 1 on the empirical matrix is the sample forecaster
        assert np.allclose(res.forecasts[(d, "tic_emp")], res.forecasts[(d, "sample")], rtol=1e-12, atol=0)
        # the default tree (by prefix) is the mapping EQ/FX/IR above, and the default weight 0.5 (no
        # repair needed on these windows): halfway between the pure implied matrix and the sample
        t, t0, s = (res.forecasts[(d, k)] for k in ("tic", "tic_pure", "sample"))
        assert not np.allclose(t, s, rtol=1e-6, atol=0)
        assert np.allclose(t, 0.5 * t0 + 0.5 * s, rtol=1e-12, atol=0)
