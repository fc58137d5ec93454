"""Grafana dashboards as code: provisioning files and the generator of dashboards/json/."""
