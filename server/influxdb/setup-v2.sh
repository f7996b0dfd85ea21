#!/bin/sh
# InfluxDB 2.x: the bucket the gateway writes (raw data, 400 days), a bucket for the long-kept
# aggregates, and a task copying the `aggregate` points every hour. Needs the `influx` CLI
# configured with an operator token (influx config create ...). Usage: sh setup-v2.sh <org>
set -eu
ORG="${1:?usage: setup-v2.sh <org>}"
influx bucket create --org "$ORG" --name edge --retention 400d
influx bucket create --org "$ORG" --name edge_kept --retention 0   # 0: kept for good
influx task create --org "$ORG" --file "$(dirname "$0")/keep-aggregates.flux"
# The gateway's token: write to edge, read both (the dashboards' and reports' token: read only).
influx auth create --org "$ORG" --description edgemon-gateway \
  --write-bucket "$(influx bucket find --org "$ORG" --name edge --hide-headers | cut -f1)" \
  --read-bucket "$(influx bucket find --org "$ORG" --name edge --hide-headers | cut -f1)"
