"""ML where physics stops: a scikit-learn model of what a physics residual still owes to other signals.

A ridge regression (``RidgeCV``, standardised inputs) of the residual on context signals the physics
does not use (web tension, slot gap, calender speed). It is kept only when it explains the residual out
of sample (cross-validated R² above ``min_r2``); otherwise it predicts zero, so an unrelated signal can
never hide a drift. Linear on purpose: its state is a handful of coefficients that survive a snapshot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


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

    def __init__(self, context: list[str], min_r2: float = 0.05) -> None:
        self.context = list(context)
        self.min_r2 = min_r2
        self.active = False
        self.mean = np.zeros(len(context))
        self.scale = np.ones(len(context))
        self.coef = np.zeros(len(context))
        self.intercept = 0.0
        self.r2 = 0.0

    def fit(self, x: Any, y: Any) -> ResidualRegressor:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(y) < 50 or not np.all(x.std(axis=0) > 0):
            return self
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

    def predict(self, values: dict[str, float]) -> float:
        if not self.active:
            return 0.0
        x = np.array([values.get(name, np.nan) for name in self.context], dtype=float)
        if not np.isfinite(x).all():
            return 0.0
        return float(self.coef @ ((x - self.mean) / self.scale) + self.intercept)

    def state(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "min_r2": self.min_r2,
            "active": self.active,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "r2": self.r2,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ResidualRegressor:
        model = cls(state["context"], state["min_r2"])
        model.active, model.intercept, model.r2 = state["active"], state["intercept"], state["r2"]
        model.mean, model.scale = np.asarray(state["mean"]), np.asarray(state["scale"])
        model.coef = np.asarray(state["coef"])
        return model
