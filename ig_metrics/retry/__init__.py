"""The retry-delay policy (Backoff) that exporters and the Kubernetes pod watch share."""
