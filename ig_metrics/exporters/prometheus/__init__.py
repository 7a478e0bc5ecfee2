"""The prometheus (pull) exporter: its endpoint, metric names, text and protobuf expositions."""
