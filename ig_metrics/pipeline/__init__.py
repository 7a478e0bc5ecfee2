"""Sampler, snapshots and their conversion to exporter data."""
