"""Step models by kind: one class per process-step kind, registered here, composed by ``models.line``.

A line description names each step's kind; ``model_class(kind)`` returns the class registered for it, or
``GenericStep`` (level and PCA monitoring of its signals) for a kind nobody has modelled yet. A new kind
is a subclass of ``StepModel`` (or ``TickStep``) decorated with ``@register``; the line model, the twin
and the what-if find it by its kind.
"""

from __future__ import annotations

from typing import TypeVar

from models.steps.base import StepModel, StepSpec, TickStep, Tuning
from models.steps.calender import CalenderStep
from models.steps.coater import CoaterStep
from models.steps.drypress import DryPressStep
from models.steps.formation import FormationStep
from models.steps.furnace import FurnaceStep
from models.steps.generic import GenericStep

__all__ = [
    "StepModel",
    "StepSpec",
    "TickStep",
    "Tuning",
    "kinds",
    "model_class",
    "register",
]

KINDS: dict[str, type[StepModel]] = {}
Kind = TypeVar("Kind", bound=type[StepModel])


def register(cls: Kind) -> Kind:
    """Make ``cls`` the model of steps of ``cls.kind``."""
    KINDS[cls.kind] = cls
    return cls


def model_class(kind: str) -> type[StepModel]:
    """The model registered for ``kind``; ``GenericStep`` for a kind without one."""
    return KINDS.get(kind, GenericStep)


def kinds() -> list[str]:
    """The step kinds with a model of their own."""
    return sorted(KINDS)


for _builtin in (CoaterStep, CalenderStep, FormationStep, DryPressStep, FurnaceStep):
    register(_builtin)
