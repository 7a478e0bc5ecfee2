"""The vocabulary every layer speaks: snapshots of metrics (model.snapshot) and
the semantic-convention attribute names (model.semconv). Imports nothing of ours."""
