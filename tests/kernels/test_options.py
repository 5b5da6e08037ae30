"""Options: prices and Greeks against QuantLib, put-call parity, AD against finite differences,
numpy twin, the vol surface's shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stressgrid import kernels  # noqa: F401  (float64)
from stressgrid.kernels._options import (
    T0_YEARS,
    VOL_FLOOR,
    OptionBook,
    option_model,
    option_pnl,
    option_pnl_numpy,
    option_value_one,
    surface_vol_numpy,
)

from kernel_helpers import AS_OF, flat_points, no_points, ql_date, rel_err

ql = pytest.importorskip("QuantLib")

# factor columns of the hand-made level vector
S_, RD, RF, B, ATM, SKEW, CURV, TERM = range(8)


def one_option(kind: str, K: float, days: int, call: bool, q: float = 0.0, fwd_days: int | None = None) -> OptionBook:
    """One option on a flat curve (column RD), foreign curve RF (FX), basis B (commodity)."""
    T = days / 365.0
    Tf = (fwd_days or days) / 365.0
    return OptionBook(
        spot_idx=np.int64(S_),
        fx_idx=np.int64(-1),
        strike=np.float64(K),
        expiry=np.float64(T),
        fwd_time=np.float64(Tf),
        omega=np.float64(1.0 if call else -1.0),
        units=np.float64(1.0),
        dom=flat_points(RD),
        rd_in_fwd=np.float64(0.0 if kind == "cmd" else 1.0),
        forn=flat_points(RF) if kind == "fx" else no_points(),
        basis_idx=np.int64(B),
        basis_time=np.float64(Tf if kind == "cmd" else 0.0),
        div_yield=np.float64(q),
        vol_idx=np.array([ATM, SKEW, CURV, TERM], dtype=np.int64),
    )


def levels(S, rd, rf=0.0, b=0.0, vol=0.2, skew=0.0, curv=0.0, term=0.0) -> np.ndarray:
    return np.array([S, rd, rf, b, vol, skew, curv, term], dtype=float)


def greeks(o, L):
    """Value and AD Greeks of one option: delta, gamma, d/d(rd), d/d(rf), vega (d/d ATM)."""
    f = lambda L: option_value_one(o, L)  # noqa: E731
    g = jax.grad(f)(jnp.asarray(L))
    gamma = jax.hessian(f)(jnp.asarray(L))[S_, S_]
    return float(f(jnp.asarray(L))), np.asarray(g), float(gamma)


def _ql_setup(days):
    today = ql_date(AS_OF)
    ql.Settings.instance().evaluationDate = today
    return today, today + days, ql.Actual365Fixed()


def _flat(today, r, dc):
    return ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc))


def _cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield dict(
            S=float(rng.uniform(50, 150)),
            m=float(np.exp(rng.uniform(-0.2, 0.2))),
            days=int(rng.integers(20, 720)),
            vol=float(rng.uniform(0.08, 0.6)),
            r=float(rng.uniform(-0.01, 0.08)),
            q=float(rng.uniform(0.0, 0.05)),
            call=bool(rng.integers(0, 2)),
        )


@pytest.mark.parametrize("case", list(_cases(12, 1)))
def test_black_scholes_merton_matches_quantlib(case):
    c = case
    K = c["S"] * c["m"]
    today, expiry, dc = _ql_setup(c["days"])
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(c["S"])),
        _flat(today, c["q"], dc),
        _flat(today, c["r"], dc),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), c["vol"], dc)),
    )
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if c["call"] else ql.Option.Put, K), ql.EuropeanExercise(expiry))
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
    o = one_option("eq", K, c["days"], c["call"], q=c["q"])
    v, g, gamma = greeks(o, levels(c["S"], c["r"], vol=c["vol"]))
    assert rel_err(v, opt.NPV()) < 1e-10
    assert rel_err(g[S_], opt.delta()) < 1e-10
    assert rel_err(gamma, opt.gamma()) < 1e-10
    assert rel_err(g[ATM], opt.vega()) < 1e-10
    assert rel_err(g[RD], opt.rho()) < 1e-10


@pytest.mark.parametrize("case", list(_cases(8, 2)))
def test_garman_kohlhagen_matches_quantlib(case):
    c = case
    S, K = c["S"] / 100.0, c["S"] * c["m"] / 100.0  # an FX rate near 1
    today, expiry, dc = _ql_setup(c["days"])
    proc = ql.GarmanKohlagenProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        _flat(today, c["q"], dc),  # foreign rate
        _flat(today, c["r"], dc),  # domestic rate
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), c["vol"], dc)),
    )
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if c["call"] else ql.Option.Put, K), ql.EuropeanExercise(expiry))
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
    o = one_option("fx", K, c["days"], c["call"])
    v, g, gamma = greeks(o, levels(S, c["r"], rf=c["q"], vol=c["vol"]))
    assert rel_err(v, opt.NPV()) < 1e-10
    assert rel_err(g[S_], opt.delta()) < 1e-10
    assert rel_err(gamma, opt.gamma()) < 1e-10
    assert rel_err(g[ATM], opt.vega()) < 1e-10
    assert rel_err(g[RD], opt.rho()) < 1e-10
    assert rel_err(g[RF], opt.dividendRho()) < 1e-10


@pytest.mark.parametrize("case", list(_cases(8, 3)))
def test_black76_matches_quantlib(case):
    c = case
    b = c["q"]  # a basis level
    F = c["S"] * np.exp(b * c["days"] / 365.0)
    K = F * c["m"]
    today, expiry, dc = _ql_setup(c["days"])
    proc = ql.BlackProcess(
        ql.QuoteHandle(ql.SimpleQuote(F)),
        _flat(today, c["r"], dc),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), c["vol"], dc)),
    )
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if c["call"] else ql.Option.Put, K), ql.EuropeanExercise(expiry))
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
    o = one_option("cmd", K, c["days"], c["call"])
    v, g, gamma = greeks(o, levels(c["S"], c["r"], b=b, vol=c["vol"]))
    assert rel_err(v, opt.NPV()) < 1e-10
    # our delta is with respect to the spot factor: dV/dS = dV/dF * F / S
    assert rel_err(g[S_], opt.delta() * F / c["S"]) < 1e-10
    assert rel_err(g[ATM], opt.vega()) < 1e-10
    # and the undiscounted Black formula of QuantLib, as a second reference
    ref = ql.blackFormula(ql.Option.Call if c["call"] else ql.Option.Put, K, F, c["vol"] * np.sqrt(c["days"] / 365.0),
                          np.exp(-c["r"] * c["days"] / 365.0))
    assert rel_err(v, ref) < 1e-10


@pytest.mark.parametrize("kind", ["eq", "fx", "cmd"])
def test_put_call_parity_on_the_surface(kind):
    """C - P = DF (F - K) whatever the smile (the same vol prices both at one strike)."""
    rng = np.random.default_rng(4)
    for _ in range(10):
        S = rng.uniform(50, 150)
        K = S * np.exp(rng.uniform(-0.3, 0.3))
        days = int(rng.integers(5, 700))
        L = levels(S, rng.uniform(0, 0.05), rf=rng.uniform(0, 0.05), b=rng.uniform(-0.05, 0.05),
                   vol=rng.uniform(0.1, 0.4), skew=rng.uniform(-0.2, 0), curv=rng.uniform(0, 0.05), term=rng.uniform(-0.02, 0.02))
        q = 0.02 if kind == "eq" else 0.0
        c = float(option_value_one(one_option(kind, K, days, True, q=q), jnp.asarray(L)))
        p = float(option_value_one(one_option(kind, K, days, False, q=q), jnp.asarray(L)))
        T = days / 365.0
        F = {"eq": S * np.exp((L[RD] - q) * T), "fx": S * np.exp((L[RD] - L[RF]) * T), "cmd": S * np.exp(L[B] * T)}[kind]
        assert c - p == pytest.approx(np.exp(-L[RD] * T) * (F - K), rel=1e-11, abs=1e-11 * S)


def test_ad_greeks_agree_with_finite_differences_on_the_surface():
    for kind in ("eq", "fx", "cmd"):
        o = one_option(kind, 105.0, 200, False, q=0.01)
        L = levels(100.0, 0.02, rf=0.01, b=0.01, vol=0.22, skew=-0.1, curv=0.03, term=0.01)
        f = lambda x: float(option_value_one(o, jnp.asarray(x)))  # noqa: E731
        g = np.asarray(jax.grad(lambda x: option_value_one(o, x))(jnp.asarray(L)))
        for j in range(len(L)):
            h = 1e-5 * max(abs(L[j]), 1e-2)
            up, dn = L.copy(), L.copy()
            up[j] += h
            dn[j] -= h
            fd = (f(up) - f(dn)) / (2 * h)
            assert g[j] == pytest.approx(fd, rel=1e-6, abs=1e-8), (kind, j)
        # gamma by second differences
        h = 1e-3 * L[S_]
        up, dn = L.copy(), L.copy()
        up[S_] += h
        dn[S_] -= h
        fd2 = (f(up) - 2 * f(L) + f(dn)) / h**2
        gam = float(jax.hessian(lambda x: option_value_one(o, x))(jnp.asarray(L))[S_, S_])
        assert gam == pytest.approx(fd2, rel=1e-5)


def _random_book(rng, n: int) -> tuple[OptionBook, np.ndarray]:
    """n options of the three kinds on one 8-column level vector."""
    kind = rng.integers(0, 3, n)
    days = rng.integers(3, 900, n)
    T = days / 365.0
    Tf = T + rng.uniform(0, 0.2, n) * (kind == 2)
    cols = lambda c: np.full(n, c, dtype=np.int64)  # noqa: E731
    book = OptionBook(
        spot_idx=cols(S_),
        fx_idx=cols(-1),
        strike=100.0 * np.exp(rng.uniform(-0.4, 0.4, n)),
        expiry=T,
        fwd_time=Tf,
        omega=np.where(rng.integers(0, 2, n) == 1, 1.0, -1.0),
        units=rng.uniform(-100, 100, n),
        dom=flat_points(RD, (n,)),
        rd_in_fwd=np.where(kind == 2, 0.0, 1.0),
        forn=type(flat_points(RF, (n,)))(*(np.where(kind == 1, a, 0 * a) for a in flat_points(RF, (n,)))),
        basis_idx=cols(B),
        basis_time=np.where(kind == 2, Tf, 0.0),
        div_yield=np.where(kind == 0, rng.uniform(0, 0.04, n), 0.0),
        vol_idx=np.tile(np.array([ATM, SKEW, CURV, TERM]), (n, 1)),
    )
    return book, levels(100.0, 0.02, rf=0.01, b=0.015, vol=0.2, skew=-0.1, curv=0.02, term=0.01)


def test_numpy_twin_matches_jax_on_random_books():
    rng = np.random.default_rng(6)
    book, base = _random_book(rng, 40)
    is_log = np.array([True] + [False] * 7)
    shocks = rng.normal(0, 1, (16, 8)) * np.array([0.1, 0.01, 0.01, 0.01, 0.05, 0.05, 0.01, 0.01])
    new = np.where(is_log, base * np.exp(shocks), base + shocks)
    a = np.asarray(option_pnl(book, base, new))
    b = option_pnl_numpy(book, base, new)
    assert a.shape == (16, 40)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    # a zero shock is exactly zero P&L
    assert np.all(np.asarray(option_pnl(book, base, np.repeat(base[None], 3, 0))) == 0.0)
    assert np.all(option_pnl_numpy(book, base, np.repeat(base[None], 3, 0)) == 0.0)


def test_surface_shapes():
    """ATM at T0 is the ATM factor; the factors move level, term structure and skew separately."""
    T = np.array([T0_YEARS, 0.5, 1.0])
    flat = surface_vol_numpy(0.2, 0.0, 0.0, 0.0, 0.0, T)
    np.testing.assert_array_equal(flat, 0.2)
    inverted = surface_vol_numpy(0.2, 0.0, 0.0, -0.02, 0.0, T)
    assert inverted[0] == 0.2 and np.all(np.diff(inverted) < 0)
    assert surface_vol_numpy(0.2, 0.0, 0.0, 0.02, 0.0, 1.0) == pytest.approx(0.2 + 0.02 * np.log(1.0 / T0_YEARS))
    k = np.array([-0.2, 0.0, 0.2])
    skewed = surface_vol_numpy(0.2, -0.1, 0.0, 0.0, k, T0_YEARS)
    assert skewed[0] > skewed[1] > skewed[2]
    assert skewed[0] - skewed[1] == pytest.approx(0.1 * 0.2 / np.sqrt(T0_YEARS))
    smile = surface_vol_numpy(0.2, 0.0, 0.05, 0.0, k, T0_YEARS)
    assert smile[0] == pytest.approx(smile[2]) and smile[0] > smile[1]
    assert surface_vol_numpy(0.01, -1.0, 0.0, 0.0, 0.5, 0.1) == VOL_FLOOR


# --------------------------------------------------------------------------------------------------
# the batched kernel (options x scenarios in blocks), against QuantLib and the numpy twin
# --------------------------------------------------------------------------------------------------


def _batched_values(book: OptionBook, base, new) -> np.ndarray:
    """Values ``[n, 1 + S]`` from the batched kernel (column 0 at ``base``)."""
    from stressgrid.kernels._options import _values
    from stressgrid.kernels._tuning import SCENARIO_BLOCK

    v = np.array(_values(book, jnp.asarray(base), jnp.asarray(new)))
    # one column per scenario, then the base levels in every column left (at least one)
    S = len(new)
    assert v.shape[1] % SCENARIO_BLOCK == 0 and v.shape[1] > S
    assert np.all(v[:, S:] == v[:, S : S + 1])
    return np.concatenate([v[:, S : S + 1], v[:, :S]], axis=1)


def _stack(options: list[OptionBook], offsets: list[int]) -> OptionBook:
    """Options on their own 8-column level vectors, side by side (option ``i``'s columns from ``offsets[i]``)."""
    def field(name):
        vals = [getattr(o, name) for o in options]
        if name in ("spot_idx", "basis_idx"):
            return np.array([v + off for v, off in zip(vals, offsets)], dtype=np.int64)
        if name == "vol_idx":
            return np.stack([v + off for v, off in zip(vals, offsets)])
        if name in ("dom", "forn"):
            return type(vals[0])(*(np.array([getattr(v, f) + (off if f in ("lo", "hi") else 0) for v, off in zip(vals, offsets)])
                                   for f in vals[0]._fields))
        return np.array(vals)
    return OptionBook(*(field(f) for f in OptionBook._fields))


def test_batched_kernel_matches_quantlib_for_the_three_models():
    """Black-Scholes-Merton, Garman-Kohlhagen and Black-76 prices of a mixed book from the batched
    kernel agree with QuantLib's AnalyticEuropeanEngine to 1e-10."""
    options, levels_, refs = [], [], []
    for kind, cases in (("eq", _cases(6, 1)), ("fx", _cases(6, 2)), ("cmd", _cases(6, 3))):
        for c in cases:
            today, expiry, dc = _ql_setup(c["days"])
            vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), c["vol"], dc))
            if kind == "eq":
                S, K, L, q = c["S"], c["S"] * c["m"], levels(c["S"], c["r"], vol=c["vol"]), c["q"]
                proc = ql.BlackScholesMertonProcess(ql.QuoteHandle(ql.SimpleQuote(S)), _flat(today, q, dc), _flat(today, c["r"], dc), vol)
            elif kind == "fx":
                S, K, q = c["S"] / 100.0, c["S"] * c["m"] / 100.0, 0.0
                L = levels(S, c["r"], rf=c["q"], vol=c["vol"])
                proc = ql.GarmanKohlagenProcess(ql.QuoteHandle(ql.SimpleQuote(S)), _flat(today, c["q"], dc), _flat(today, c["r"], dc), vol)
            else:
                F = c["S"] * np.exp(c["q"] * c["days"] / 365.0)
                K, q, L = F * c["m"], 0.0, levels(c["S"], c["r"], b=c["q"], vol=c["vol"])
                proc = ql.BlackProcess(ql.QuoteHandle(ql.SimpleQuote(F)), _flat(today, c["r"], dc), vol)
            opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if c["call"] else ql.Option.Put, K), ql.EuropeanExercise(expiry))
            opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
            options.append(one_option(kind, K, c["days"], c["call"], q=q))
            levels_.append(L)
            refs.append(opt.NPV())
    book = _stack(options, [8 * i for i in range(len(options))])
    base = np.concatenate(levels_)
    ours = _batched_values(book, base, base[None])[:, 0]
    assert rel_err(ours, np.array(refs)) < 1e-10


def _mixed_book(rng, n: int) -> tuple[OptionBook, np.ndarray, np.ndarray]:
    """``n`` options on three underlyings (columns 0, 8, 16 of three 8-column blocks), some with
    their premium in a foreign currency (FX column 24): base levels and their log mask."""
    blocks = [_random_book(rng, n)[0] for _ in range(3)]
    which = rng.integers(0, 3, n)
    opts = [OptionBook(*(type(f)(*(a[i] for a in f)) if isinstance(f, tuple) else f[i] for f in blocks[w])) for i, w in enumerate(which)]
    book = _stack(opts, list(8 * which))
    book = book._replace(fx_idx=np.where(rng.random(n) < 0.3, 24, -1))
    base = np.concatenate([levels(100.0, 0.02, rf=0.01, b=0.015, vol=0.2, skew=-0.1, curv=0.02, term=0.01),
                           levels(50.0, 0.03, rf=0.00, b=0.02, vol=0.3, skew=-0.05, curv=0.01, term=-0.01),
                           levels(1.1, 0.01, rf=0.02, b=0.01, vol=0.1, skew=0.02, curv=0.03, term=0.0), [0.9]])
    is_log = np.zeros(len(base), dtype=bool)
    is_log[[0, 8, 16, 24]] = True
    return book, base, is_log


@pytest.mark.parametrize("kinds", ["mixed", "equity only"])
def test_batched_kernel_matches_numpy_twin(kinds):
    """Values to 1e-13 of ``|units| (F + K)``, P&L likewise, for a mixed book and one of equity
    options only (no foreign curve, basis or FX)."""
    from stressgrid.kernels._options import _value_numpy

    rng = np.random.default_rng(21)
    book, base, is_log = _mixed_book(rng, 300)
    if kinds == "equity only":
        book = book._replace(rd_in_fwd=np.ones(300), basis_time=np.zeros(300), fx_idx=np.full(300, -1),
                             forn=type(book.forn)(*(0 * a for a in book.forn)))
    sd = np.where(is_log, 0.1, 0.01)
    shocks = rng.normal(0, 1, (70, len(base))) * sd
    new = np.where(is_log, base * np.exp(shocks), base + shocks)
    ours = _batched_values(book, base, new)
    levels_ = np.concatenate([base[None], new])
    twin = _value_numpy(book, levels_).T
    scale = np.abs(book.units)[:, None] * (levels_[:, book.spot_idx].T + book.strike[:, None])
    assert np.max(np.abs(ours - twin) / scale) < 1e-13
    pnl = np.asarray(option_pnl(book, base, new))
    assert np.max(np.abs(pnl - option_pnl_numpy(book, base, new)) / scale[:, 1:].T) < 1e-13


@pytest.mark.parametrize("S", [1, 63, 64, 65, 200])
def test_batched_kernel_zero_shock_is_exactly_zero(S):
    rng = np.random.default_rng(S)
    book, base, is_log = _mixed_book(rng, 50)
    new = np.repeat(base[None], S, axis=0)
    moved = rng.random(S) < 0.5
    new[moved] = base * np.exp(rng.normal(0, 0.05, (moved.sum(), len(base))) * is_log)
    pnl = np.asarray(option_pnl(book, base, new))
    assert pnl.shape == (S, 50)
    assert np.all(pnl[~moved] == 0.0)


def test_normal_tail_ratio_matches_scipy():
    """``N(-a) = exp(-a^2/2) m(a)`` with the kernel's rational ``m``: within 2e-15 of scipy's ``erfcx``
    (Faddeeva package) on [0, 38.6], and of ``ndtr`` where ``N(-a)`` is a normal float."""
    from scipy.special import erfcx, ndtr

    from stressgrid.kernels._common import normal_tail_ratio

    a = np.concatenate([np.linspace(0.0, 10.0, 20001), np.linspace(10.0, 38.6, 5001)])
    m = np.asarray(normal_tail_ratio(jnp.asarray(a)))
    ref = 0.5 * erfcx(a / np.sqrt(2.0))
    assert np.max(np.abs(m / ref - 1)) < 2e-15
    # N(x) matches ndtr on both sides of zero
    small = a < 8.0
    # N(-a) is as accurate as exp(-a^2/2), whose argument carries a rounding of a^2 eps / 2; ndtr
    # itself is off by up to 4 eps (1 + a^2) (measured against erfcx the same way)
    tol = 8.0 * (1.0 + a[small] ** 2) * np.finfo(float).eps
    assert np.all(np.abs(np.exp(-a[small] ** 2 / 2) * m[small] / ndtr(-a[small]) - 1) < tol)
    assert np.max(np.abs((1 - np.exp(-a[small] ** 2 / 2) * m[small]) - ndtr(a[small]))) < 4e-16


def test_batched_kernel_is_accurate_deep_out_of_the_money():
    """Far out of the money (d1, d2 from -5 to -35) the price ``DF (F N(d1) - K N(d2))`` is the
    difference of two tiny, close numbers.  Against the same formula in 50-digit arithmetic (mpmath),
    the batched kernel is within 1e-12 relative; a difference of two erfc-based CDFs (scipy's
    ``ndtr``, like the one-option kernel) is off by about 1e-11 on this book."""
    mp = pytest.importorskip("mpmath")
    from scipy.special import ndtr

    mp.mp.dps = 50
    n = 60
    T = np.full(n, 0.25)
    strike = 100.0 * np.exp(np.linspace(0.6, 2.2, n))  # calls far out of the money
    book = OptionBook(
        spot_idx=np.full(n, S_), fx_idx=np.full(n, -1), strike=strike, expiry=T, fwd_time=T, omega=np.ones(n),
        units=np.ones(n), dom=flat_points(RD, (n,)), rd_in_fwd=np.ones(n), forn=no_points((n,)), basis_idx=np.full(n, B),
        basis_time=np.zeros(n), div_yield=np.zeros(n), vol_idx=np.tile(np.array([ATM, SKEW, CURV, TERM]), (n, 1)),
    )
    L = levels(100.0, 0.02, vol=0.15)
    ours = _batched_values(book, L, L[None])[:, 0]
    F, DF, sig, k = option_model(book, L)
    exact = []
    for j in range(n):  # from the same inputs: spot 100, rate 2%, the surface's vol at the strike
        sd = mp.mpf(sig[j]) * mp.sqrt(mp.mpf(T[j]))
        fwd = 100 * mp.exp(mp.mpf(L[RD]) * mp.mpf(T[j]))
        d1 = mp.log(fwd / mp.mpf(strike[j])) / sd + sd / 2
        exact.append(float(mp.exp(-mp.mpf(L[RD]) * mp.mpf(T[j])) * (fwd * mp.ncdf(d1) - mp.mpf(strike[j]) * mp.ncdf(d1 - sd))))
    exact = np.array(exact)
    sd = sig * np.sqrt(T)
    d1 = -k / sd + 0.5 * sd
    assert d1.max() < -5 and (d1 - sd).min() > -36 and exact.min() > 0
    assert np.max(np.abs(ours / exact - 1)) < 1e-12
    two_cdfs = DF * (F * ndtr(d1) - strike * ndtr(d1 - sd))
    assert np.max(np.abs(two_cdfs / exact - 1)) > 1e-12  # what the shared exponential avoids
