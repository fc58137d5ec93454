"""Connectors: plant protocols (OPC UA, MQTT) in, normalised samples out to InfluxDB and the plant bus."""
