"""InfluxDB output shared by the connectors and the twin: line protocol, the disk spool, the writer."""
