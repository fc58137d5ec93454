#!/bin/sh
# InfluxDB 2.x: map the v1 database/retention policy linetwin writes and queries (InfluxQL) to the bucket.
set -eu
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp autogen --bucket-id "${bucket_id}" --default
