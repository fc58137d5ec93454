"""Sparkplug B payloads and topic names, shared by the simulated cyclers and the MQTT connector.

The protobuf module is generated from ``sparkplug_b.proto`` (a subset of the Eclipse Sparkplug 3.0
schema, written from the specification). Maintained Python Sparkplug libraries pin paho-mqtt < 2, which
linetwin cannot use, so the few helpers below are kept here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.sparkplug.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"


class DataType(enum.IntEnum):
    """Sparkplug B metric datatypes (specification 6.4.16)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14


class MessageType(enum.StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"


@dataclass(frozen=True, slots=True)
class Topic:
    """``spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]``"""

    group_id: str
    message_type: MessageType
    edge_node_id: str
    device_id: str | None = None

    def __str__(self) -> str:
        parts = [NAMESPACE, self.group_id, self.message_type.value, self.edge_node_id]
        if self.device_id is not None:
            parts.append(self.device_id)
        return "/".join(parts)

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a Sparkplug topic; ValueError names what is wrong."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            raise ValueError(f"not a Sparkplug B topic: {topic!r}")
        try:
            message_type = MessageType(parts[2])
        except ValueError:
            raise ValueError(f"unknown Sparkplug message type {parts[2]!r}") from None
        return cls(parts[1], message_type, parts[3], parts[4] if len(parts) == 5 else None)


__all__ = ["NAMESPACE", "DataType", "MessageType", "Payload", "Topic"]
