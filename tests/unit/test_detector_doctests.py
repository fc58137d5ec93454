"""The examples in the models' docstrings run and hold (River-style executable documentation)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["models.detectors", "models.pca", "models.calibration", "models.ml", "models.scraprisk"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
