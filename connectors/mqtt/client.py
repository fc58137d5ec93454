"""A paho-mqtt 2.x client configured from ``[mqtt]``: MQTT v5, credentials, TLS, persistent session."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from connectors.mqtt.bufferedsocket import BufferedClient
from core.errors import LinetwinError
from core.settings import MqttSettings

SESSION_EXPIRY_S = 3600
#: CONNACK reasons that no retry can cure (MQTT 5 codes; paho maps 3.1.1's return codes 2, 4, 5 onto them).
#: Mosquitto answers a wrong password with "Not authorized".
PERMANENT_REFUSALS = {
    0x85: "check mqtt.client_id_prefix",
    0x86: "check mqtt.username and mqtt.password",
    0x87: "check mqtt.username and mqtt.password, and the broker's access rules",
    0x8A: "the broker has banned this client",
    0x8C: "check mqtt.username and mqtt.password",
}
#: Wait before the first reconnect after a loss, doubling up to the maximum while the broker stays away.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


def make_client(settings: MqttSettings, client_id: str) -> BufferedClient:
    """A v5 client; pair with :func:`connect` (clean_start False keeps the session across restarts)."""
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None, tls_version=ssl.PROTOCOL_TLS_CLIENT
        )
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    return client


def connect(client: mqtt.Client, settings: MqttSettings, persistent: bool = True) -> None:
    """Start connecting in the background; paho's loop thread reconnects on its own after a loss."""
    properties = Properties(PacketTypes.CONNECT)
    if persistent:
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect_async(
        settings.host,
        settings.port,
        keepalive=settings.keepalive_s,
        clean_start=not persistent,
        properties=properties,
    )


class MqttRefused(LinetwinError):
    """The broker refused this client's credentials or identity, or its TLS certificate is not trusted."""


def connack_refusal(client: mqtt.Client, reason: ReasonCode) -> MqttRefused | None:
    """The error to stop with when the broker's refusal is permanent; None when a retry may succeed."""
    hint = PERMANENT_REFUSALS.get(reason.value)
    if hint is None:
        return None
    return MqttRefused(f"MQTT broker {client.host}:{client.port} refused the connection: {reason}; {hint}")


def certificate_refusal(client: mqtt.Client, error: ssl.SSLCertVerificationError) -> MqttRefused:
    return MqttRefused(
        f"MQTT broker {client.host}:{client.port}: its TLS certificate is not trusted "
        f"({error.verify_message}); check mqtt.ca_file"
    )
