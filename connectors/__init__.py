"""Connectors: OPC UA and MQTT in, normalised samples out to InfluxDB and the plant bus.

Data flows source connector → :class:`connectors.pipeline.Pipeline` → InfluxDB writer (with disk spool)
and plant-bus publisher; every step is counted in :class:`connectors.accounting.Accounting`.
"""
