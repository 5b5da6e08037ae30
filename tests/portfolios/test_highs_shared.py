"""Our HiGHS models run after another library's HiGHS has sized the process's thread pool."""

import json
import subprocess
import sys

CODE = """
import json, numpy as np, cvxpy as cp
x = cp.Variable(3)
prob = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1])
prob.solve(solver="HIGHS")                     # cvxpy's HiGHS sizes the global thread pool first
from stressgrid.portfolios import MeanCVaR
R = np.random.default_rng(0).standard_normal((2000, 5)) * 0.01
w = MeanCVaR(alpha=0.95).fit(R).weights_
prob.solve(solver="HIGHS")                     # and cvxpy's still runs after ours
Rv = cp.Variable(5); z = cp.Variable(); u = cp.Variable(2000)
lp = cp.Problem(cp.Minimize(z + cp.sum(u) / (0.05 * 2000)), [u >= -R @ Rv - z, u >= 0, cp.sum(Rv) == 1, Rv >= 0])
lp.solve(solver="CLARABEL")
print(json.dumps({"cvxpy": prob.status, "ours": w.tolist(), "lp": lp.value,
                  "ours_cvar": float(np.mean(np.sort(-R @ w)[-100:]))}))
"""


def test_mean_cvar_after_cvxpy_highs():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["cvxpy"] == "optimal"
    assert abs(sum(res["ours"]) - 1) < 1e-9
    assert abs(res["ours_cvar"] - res["lp"]) <= 1e-6 * abs(res["lp"])  # the plain LP's optimum
