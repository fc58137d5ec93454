"""A paho-mqtt 2.x client configured from ``[mqtt]``: MQTT v5, credentials, TLS, persistent session."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.settings import MqttSettings

SESSION_EXPIRY_S = 3600


def make_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A v5 client; pair with :func:`connect` (clean_start False keeps the session across restarts)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None, tls_version=ssl.PROTOCOL_TLS_CLIENT
        )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
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
