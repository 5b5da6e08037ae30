"""Portfolio re-optimisation under stress (estimator-style optimisers).

After each stress: how would the book be re-allocated, what would the move cost, and how much tail risk
does it remove.  Every optimiser takes plain numpy arrays - scenario returns per unit weight
``[S, N]``, scenario probabilities ``[S]``, the current book ``[N]`` - stores its settings in the
constructor, computes in ``fit(...)`` and leaves its results in attributes (``weights_``, ...); none
needs Ray or files.

* :class:`MeanCVaR` - minimum CVaR, maximum return at a CVaR budget, efficient frontier; exact for any
  number of scenarios (cutting planes and scenario aggregation on HiGHS, or the full LP in cvxpy);
  :class:`DistributedCVaR` solves the same problem over :class:`ScenarioChunks` held by separate
  processes (Ray actors, handed a ``ray`` module by the caller), the driver never holding the scenarios;
* :class:`Constraints` - budget/net, leverage, bounds, groups, turnover limit and penalty, ADV caps
  (:func:`adv_caps`), frozen positions, factor bands (:class:`FactorBand`);
  :func:`diagnose_infeasibility` says which family binds;
* :class:`RiskParity` (volatility or CVaR), :class:`HRP`, :class:`HERC`, :class:`FactorRiskParity`;
  :class:`SignedRiskParity`, :class:`SignedHRP` and :class:`SignedHERC` on long-short books (signs kept,
  gross set, desk constraints solved or reported);
* :class:`FactorExposureModel` (Lasso loadings) and :class:`FactorTargeting`;
* :class:`VolTarget` - scale to a volatility target under a leverage cap;
* :func:`reoptimise_families` - per scenario family: weights before/after, VaR/CVaR before/after on the
  stressed and base sets, turnover, trading cost (``cost_fn``), contributions; tidy DataFrames.

``docs/portfolios.md`` describes the methods, the constraints and the measured speed.
"""

from ._constraints import FAMILIES, Constraints, FactorBand, LinearSystem, adv_caps, compile_constraints
from ._cvar import MeanCVaR
from ._cvar_distributed import DistributedCVaR, ScenarioChunks
from ._cvar_solver import CutPlaneCVaR, CVaRSolution
from ._diagnose import Diagnosis, diagnose_infeasibility
from ._factor_books import FactorRiskParityBook, FactorTargetBook, mimicking_factor_returns
from ._factors import FactorExposureModel, FactorTargeting
from ._herc import HERC
from ._hrp import HRP
from ._longshort import SignedHERC, SignedHRP, SignedRiskParity
from ._lp import RULinearProgram
from ._reoptimise import (
    SUMMARY_COLUMNS,
    WEIGHT_COLUMNS,
    ReoptimisationResult,
    reoptimise_families,
    reoptimise_family,
)
from ._risk import portfolio_risk, risk_contributions, vol_contributions, weighted_covariance
from ._riskparity import FactorRiskParity, RiskParity
from ._voltarget import VolTarget

__all__ = [
    "mimicking_factor_returns",
    "FAMILIES",
    "SUMMARY_COLUMNS",
    "WEIGHT_COLUMNS",
    "CVaRSolution",
    "Constraints",
    "CutPlaneCVaR",
    "Diagnosis",
    "DistributedCVaR",
    "FactorBand",
    "FactorExposureModel",
    "FactorRiskParityBook",
    "FactorTargetBook",
    "FactorRiskParity",
    "FactorTargeting",
    "HERC",
    "HRP",
    "LinearSystem",
    "MeanCVaR",
    "RULinearProgram",
    "ReoptimisationResult",
    "RiskParity",
    "ScenarioChunks",
    "SignedHERC",
    "SignedHRP",
    "SignedRiskParity",
    "VolTarget",
    "adv_caps",
    "compile_constraints",
    "diagnose_infeasibility",
    "portfolio_risk",
    "reoptimise_families",
    "reoptimise_family",
    "risk_contributions",
    "vol_contributions",
    "weighted_covariance",
]
