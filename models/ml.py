"""ML where physics stops: a scikit-learn model of what a physics residual still owes to other signals.

A ridge regression (``RidgeCV``, standardised inputs) of the residual on context signals the physics
does not use (web tension, slot gap, calender speed). It is kept only when it explains the residual out
of sample (cross-validated R² above ``min_r2``); otherwise it predicts zero, so an unrelated signal can
never hide a drift. Linear on purpose: its state is a handful of coefficients that survive a snapshot.
A context value that drops out is held at its last reading: predicting zero instead would step the
corrected residual by the whole correction for as long as the dropout lasts.

A slow context (the hall's air, which moves over the day) is judged otherwise (``slow``): three
contiguous folds give each a third of the calibration, in which the context barely moved, so one sensor
spike in it is a lever on the fit, and the R² there can fall below zero although the relation is real.
Its regression is fitted by OLS on one-minute means (a spike averages out) and kept when the
coefficient is significant (p < ``SLOW_P``) under AR(2) errors (statsmodels' GLSAR, feasible GLS): two
unrelated series that both wander during calibration correlate by chance, and HAC-robust OLS errors
take that for a relation. ``twin bench hall`` (100 six-hour trainings a case, both sensors dressed as
the realistic simulators dress theirs): a real 0.5 K/K effect kept in 90 % by cross-validated R², in
all by HAC OLS and GLSAR; an unrelated 40- or 60-minute wander kept in 13-14 % by HAC OLS, 0-1 % by GLSAR.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import statsmodels.api as sm
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.levelchart import block_means

SLOW_BLOCK = 60  # rows a slow context's regression averages over (a plant minute at 1 s ticks)
SLOW_P = 1e-6  # a slow context is kept when its coefficients are this significant


class ResidualRegressor:
    """residual ≈ w·(x − mean)/scale + b over ``context`` signals, or 0 when that explains nothing.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tension = rng.normal(120, 1, 2000)
    >>> residual = 0.01 * (tension - 120) + rng.normal(0, 0.005, 2000)
    >>> model = ResidualRegressor(["web_tension"]).fit(tension[:, None], residual)
    >>> model.active, round(model.predict({"web_tension": 122.0}), 3)
    (True, 0.02)
    """

    def __init__(self, context: list[str], min_r2: float = 0.05, slow: bool = False) -> None:
        self.context = list(context)
        self.min_r2 = min_r2
        self.slow = slow
        self.active = False
        self.mean = np.zeros(len(context))
        self.scale = np.ones(len(context))
        self.coef = np.zeros(len(context))
        self.intercept = 0.0
        self.r2 = 0.0
        self._held = np.full(len(context), np.nan)

    def fit(self, x: Any, y: Any) -> ResidualRegressor:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(y) < 50 or not np.all(x.std(axis=0) > 0):
            return self
        if self.slow:
            return self._fit_slow(x, y)
        pipeline = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 7)))
        self.r2 = float(np.mean(cross_val_score(pipeline, x, y, cv=3, scoring="r2")))
        if self.r2 < self.min_r2:
            return self
        pipeline.fit(x, y)
        scaler, ridge = pipeline.named_steps["standardscaler"], pipeline.named_steps["ridgecv"]
        self.mean, self.scale = scaler.mean_, scaler.scale_
        self.coef, self.intercept = np.asarray(ridge.coef_), float(ridge.intercept_)
        self.active = True
        return self

    def _fit_slow(self, x: np.ndarray, y: np.ndarray) -> ResidualRegressor:
        """GLS on block means, kept when the context explains the residual beyond its own wander."""
        bx, by = block_means(x, SLOW_BLOCK), block_means(y, SLOW_BLOCK)
        if len(by) < 30 or not np.all(bx.std(axis=0) > 0):
            return self
        fit = sm.GLSAR(by, sm.add_constant(bx, has_constant="add"), rho=2).iterative_fit(maxiter=10)
        test = fit.f_test(np.eye(len(fit.params))[1:])
        self.r2 = float(fit.rsquared)
        if not float(test.pvalue) < SLOW_P:
            return self
        self.mean, self.scale = bx.mean(axis=0), bx.std(axis=0)
        slopes = np.asarray(fit.params[1:], dtype=float)
        self.coef = slopes * self.scale
        self.intercept = float(fit.params[0] + slopes @ self.mean)
        self.active = True
        return self

    def predict(self, values: dict[str, float]) -> float:
        if not self.active:
            return 0.0
        x = np.array([values.get(name, np.nan) for name in self.context], dtype=float)
        x = np.where(np.isfinite(x), x, self._held)
        self._held = x
        if not np.isfinite(x).all():
            return 0.0
        return float(self.coef @ ((x - self.mean) / self.scale) + self.intercept)

    def state(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "min_r2": self.min_r2,
            "slow": self.slow,
            "active": self.active,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "r2": self.r2,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ResidualRegressor:
        model = cls(state["context"], state["min_r2"], state.get("slow", False))
        model.active, model.intercept, model.r2 = state["active"], state["intercept"], state["r2"]
        model.mean, model.scale = np.asarray(state["mean"]), np.asarray(state["scale"])
        model.coef = np.asarray(state["coef"])
        return model
