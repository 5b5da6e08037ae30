"""Fit the polynomial of the exponential used by the cash-flow kernel.

``kernels._common.exp_in_range`` computes ``e^x`` as ``2^n e^r`` with ``n = round(x / ln 2)`` and
``|r| <= ln(2) / 2``, and ``e^r`` as a polynomial of degree 11.  This script computes that
polynomial and prints its coefficients (increasing powers) as a Python literal:

* ``mpmath.chebyfit`` fits ``e^r`` on ``[-ln(2)/2, ln(2)/2]`` in 40-digit arithmetic by Chebyshev
  interpolation, which is within a small factor of the best (minimax) polynomial of its degree;
* it prints the fit's largest error (about 3e-18, 0.03 of a unit in the last place of a number near
  1: degree 10 would miss by 2e-16, degree 12 is not needed) and the coefficients rounded to float64;
* it checks the float64 evaluation (Horner, as the kernel does) against the 40-digit exponential at
  20,001 points of the interval.

``mpmath`` comes with the test dependencies (``pip install -e ".[test]"``): ``python tools/fit_exp.py``
(a few seconds).  The kernel's own accuracy over ``|x| <= 708`` is held to one unit in the last place
by ``tests/kernels/test_fast_exp.py``.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    import mpmath as mp

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--degree", type=int, default=11)
    a = ap.parse_args()
    mp.mp.dps = 40
    h = mp.log(2) / 2
    poly, err = mp.chebyfit(mp.exp, [-h, h], a.degree + 1, error=True)
    coef = [float(c) for c in poly[::-1]]  # mpmath gives decreasing powers
    r = np.linspace(-float(h), float(h), 20001)
    p = np.full_like(r, coef[-1])
    for c in coef[-2::-1]:
        p = p * r + c
    ref = np.array([float(mp.exp(mp.mpf(float(x)))) for x in r])
    print(f"degree {a.degree}: fit error {mp.nstr(err, 3)}; float64 Horner within "
          f"{np.max(np.abs(p - ref) / np.spacing(ref)):.2f} units in the last place of the 40-digit values")
    print("EXP_POLY = (" + ", ".join(repr(c) for c in coef) + ")")


if __name__ == "__main__":
    main()
