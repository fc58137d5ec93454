"""Replay recorded tables through a ``LineModel`` in time order: process ticks, formed cells, K-values.

The backtest, the benchmark and the tests share it, so history runs through exactly the live code path.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd

from models.line import LineModel
from models.rootcause import Finding


def _ns(value: Any) -> int:
    return int(pd.Timestamp(value).value)


def events(process: pd.DataFrame, cells: pd.DataFrame | None = None) -> Iterator[tuple[int, str, Any]]:
    """(time_ns, kind, payload) in time order; kinds ``tick``, ``cell`` and ``k_value``."""
    columns = list(process.columns)
    index = process.index
    times = index.as_unit("ns").asi8 if isinstance(index, pd.DatetimeIndex) else index.to_numpy()
    ticks = (
        (int(t), "tick", dict(zip(columns, row, strict=True)))
        for t, row in zip(times, process.itertuples(index=False, name=None), strict=True)
    )
    streams: list[Iterator[tuple[int, str, Any]]] = [ticks]
    if cells is not None and len(cells):
        formed = sorted(
            ((_ns(r["formation_end"]), "cell", r) for r in cells.to_dict("records")), key=lambda e: e[0]
        )
        aged = sorted(
            ((_ns(r["aging_end"]), "k_value", r) for r in cells.to_dict("records") if pd.notna(r["k_value"])),
            key=lambda e: e[0],
        )
        streams += [iter(formed), iter(aged)]
    yield from heapq.merge(*streams, key=lambda e: e[0])


def replay(
    model: LineModel,
    process: pd.DataFrame,
    cells: pd.DataFrame | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Finding]:
    """Feed every event to ``model``; returns the findings in the order they were raised."""
    return feed(model, events(process, cells), progress)


def feed(
    model: LineModel,
    stream: Iterable[tuple[int, str, Any]],
    progress: Callable[[int], None] | None = None,
) -> list[Finding]:
    """Feed events (as ``events`` yields them) to ``model``; returns the findings in order."""
    findings: list[Finding] = []
    for count, (time_ns, kind, payload) in enumerate(stream):
        if kind == "tick":
            findings += model.update_tick(time_ns, payload)
        elif kind == "cell":
            findings += model.add_cell(
                time_ns,
                payload["cell_id"],
                payload["channel"],
                payload["cathode_roll_id"],
                float(payload["position_m"]),
                float(payload["charge_capacity"]),
                float(payload["discharge_capacity"]),
            )
        else:
            findings += model.add_k_value(
                time_ns, payload["cell_id"], payload["channel"], float(payload["k_value"])
            )
        if progress is not None and count % 1000 == 0:
            progress(count)
    return findings


def alarms(findings: Iterable[Finding]) -> list[Finding]:
    """Each alarm once: a finding raised again only to list a consequence it stands for (same
    condition, same onset) is the alarm already raised, not another one."""
    seen: set[tuple[str, int]] = set()
    out = []
    for finding in findings:
        key = (finding.key, finding.onset_ns)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out
