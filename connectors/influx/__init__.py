"""InfluxDB output: line protocol over HTTP ``/write`` with batching, retry and a disk spool."""
