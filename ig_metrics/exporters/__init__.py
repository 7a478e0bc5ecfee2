"""Exporter types, one package per protocol (prometheus/, otlp/, remotewrite/;
console.py), listed in registry.py, whose `create_exporter` is the one factory;
what they share to deliver (delivery/: one worker per exporter with its own
thread, timeout, retry and health; limits, queue, transports) and to encode
(encoding/). Import the module you need: the registry takes in every type
(grpc, requests, prometheus_client), which costs start-up time."""
