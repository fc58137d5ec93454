"""Spawned ``twin`` processes for the scale-out benches: started, paused, metered and stopped together.

``twin bench scaleout`` runs several ingest processes and ``twin bench twin-workers`` several twin
workers the same way: one spawned child per settings, ready once each answers its metrics, paused with
SIGSTOP while a backlog is published and resumed with SIGCONT, their CPU summed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import psutil

from bench.e2e import _SPAWN, _stop
from bench.ingest import cpu_seconds
from core.localservices import http_answers
from core.settings import Settings


def wait_for(condition: Callable[[], bool], within_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll ``condition`` until it holds; TimeoutError naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {within_s:.0f} s")
        time.sleep(poll_s)


class Spawned:
    """One child running ``target`` per settings in ``settings``; ``metrics`` is each one's URL."""

    def __init__(
        self, target: Callable[[Settings], None], settings: list[Settings], metrics: Callable[[Settings], str]
    ) -> None:
        self.target = target
        self.settings = settings
        self.metrics = metrics
        self.children: list[BaseProcess] = []

    def start(self, ready_s: float, what: str) -> None:
        for settings in self.settings:
            child = _SPAWN.Process(target=self.target, args=(settings,), daemon=True)
            child.start()
            self.children.append(child)
        wait_for(lambda: all(http_answers(self.metrics(s)) for s in self.settings), ready_s, what)

    def signal(self, signum: int) -> None:
        for child in self.children:
            assert child.pid is not None
            os.kill(child.pid, signum)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(psutil.Process(child.pid)) for child in self.children)

    def stop(self) -> None:
        _stop(*self.children)
