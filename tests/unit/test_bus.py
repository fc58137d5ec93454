"""The plant bus codec: what is encoded decodes to the same samples; anything else is rejected."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import bus
from core.errors import ConfigError, RejectedInput
from core.sample import Quality, Sample
from core.uns import Namespace

_text = st.text(max_size=12)
_samples = st.builds(
    Sample,
    line=_text,
    machine=_text,
    signal=_text,
    value=st.floats(allow_nan=False, allow_infinity=False),
    unit=_text,
    source_time_ns=st.integers(0, 2**63 - 1),
    receive_time_ns=st.integers(0, 2**63 - 1),
    quality=st.sampled_from(Quality),
    source=_text,
    seq=st.none() | st.integers(0, 2**64 - 1),
    channel=st.none() | _text,
    roll_id=st.none() | _text,
    cell_id=st.none() | _text,
    source_unit=st.none() | _text,
)


@given(st.lists(_samples, max_size=5))
def test_decode_returns_what_was_encoded(samples: list[Sample]) -> None:
    assert bus.decode(bus.encode(samples)) == samples


def _one() -> dict[str, object]:
    sample = Sample("line1", "coater1", "pump_flow", 1.5, "mL/min", 10, 11, seq=3)
    return dict(json.loads(bus.encode([sample]))[0])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"a": 1}', "wrong_type"),
        (b"[1]", "wrong_type"),
        (json.dumps([{**_one(), "value": "1.5"}]).encode(), "wrong_type"),
        (json.dumps([{**_one(), "value": True}]).encode(), "wrong_type"),
        (json.dumps([{**_one(), "seq": 1.5}]).encode(), "wrong_type"),
        (json.dumps([{**_one(), "quality": "fine"}]).encode(), "wrong_type"),
        (json.dumps([{**_one(), "extra": 1}]).encode(), "wrong_type"),
        (b'[{"value": NaN}]', "wrong_type"),
        (json.dumps([{**_one(), "value": float("inf")}]).encode(), "non_finite"),
    ],
)
def test_decode_rejects_anything_but_a_strict_sample_array(payload: bytes, reason: str) -> None:
    with pytest.raises(RejectedInput) as info:
        bus.decode(payload)
    assert info.value.reason == reason


def test_topics_follow_the_isa95_levels_under_linetwins_root() -> None:
    ns = Namespace("lyon", "cells", "l7")
    assert ns.bus("anode_coater") == "linetwin/bus/lyon/cells/l7/anode_coater"
    assert ns.state("+") == "linetwin/state/lyon/cells/l7/+"
    assert ns.alerts == "linetwin/alerts/lyon/cells/l7"
    assert ns.step("cell_formation") == "lyon/cells/l7/cell_formation"
    assert ns.sparkplug_group == "lyon.cells.l7"
    assert Namespace("lyon", "cells", "l7", root="acme").bus("x") == "acme/bus/lyon/cells/l7/x"


@pytest.mark.parametrize("level", ["", "a/b", "l+", "#"])
def test_a_level_that_cannot_be_a_topic_level_is_refused(level: str) -> None:
    with pytest.raises(ConfigError, match="topic level"):
        Namespace("site1", "area1", level)


def test_a_message_of_a_producer_without_source_unit_still_decodes() -> None:
    item = json.loads(bus.encode([Sample("line1", "coater1", "pump_flow", 1.5, "mL/min", 10, 11)]))[0]
    del item["source_unit"]
    (sample,) = bus.decode(json.dumps([item]).encode())
    assert sample.source_unit is None and sample.value == 1.5
