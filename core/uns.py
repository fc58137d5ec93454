"""The Unified Namespace: every MQTT topic linetwin reads or publishes by default, from ISA-95 levels.

A line's identity is its site, area and line (from its description, unless the settings name them), and a
process step is the next level. The plant's own data sits under that hierarchy, as a UNS has it:

- cycler channels (JSON): ``<site>/<area>/<line>/<step>/<channel>/{data,result,ocv,state}``
- Sparkplug B: group ``<site>.<area>.<line>``, edge node ``<step>`` (Sparkplug forbids ``/`` in IDs)

What linetwin derives is kept under its own root (``mqtt.topic_root``, default ``linetwin``), so a
subscriber to the plant's levels never reads the twin's output as plant data:

- the plant bus: ``<root>/bus/<site>/<area>/<line>/<step>``
- retained last values: ``<root>/state/<site>/<area>/<line>/<step>``
- alerts: ``<root>/alerts/<site>/<area>/<line>``
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError

_RESERVED = frozenset("/+#")


@dataclass(frozen=True, slots=True)
class Namespace:
    """The topics of one line."""

    site: str
    area: str
    line: str
    root: str = "linetwin"

    def __post_init__(self) -> None:
        for level, value in (("site", self.site), ("area", self.area), ("line", self.line)):
            if not value or _RESERVED & set(value):
                raise ConfigError(f"{level} {value!r} cannot be a topic level (empty, or holds / + #)")

    @property
    def levels(self) -> str:
        return f"{self.site}/{self.area}/{self.line}"

    def step(self, step: str) -> str:
        """``<site>/<area>/<line>/<step>``: where a step's own MQTT data is published."""
        return f"{self.levels}/{step}"

    @property
    def sparkplug_group(self) -> str:
        return f"{self.site}.{self.area}.{self.line}"

    def bus(self, step: str) -> str:
        """A step's plant bus topic; ``bus("+")`` is the filter for every step of the line."""
        return f"{self.root}/bus/{self.levels}/{step}"

    def state(self, step: str) -> str:
        """A step's retained last values; ``state("+")`` is the filter for every step of the line."""
        return f"{self.root}/state/{self.levels}/{step}"

    @property
    def alerts(self) -> str:
        return f"{self.root}/alerts/{self.levels}"
