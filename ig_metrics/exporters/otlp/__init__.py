"""The otlp-grpc and otlp-http exporters: their settings, request encoder and transports."""
