"""The prometheus-remote-write exporter and its WriteRequest encoder."""
