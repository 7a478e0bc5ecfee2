"""Exporter types (one module each, listed in registry.py, whose
`create_exporter` is the one factory) and what supervises them: one worker per
exporter (its own thread, timeout, retry, health), limits, encoding and
transports. Import the module you need: the registry takes in every type
(grpc, requests, prometheus_client), which costs start-up time."""
