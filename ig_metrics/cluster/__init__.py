"""The CLI's side of a cluster, through the API server only: access and rights,
a run's objects, the pods watched, every node's summary read concurrently, the
cluster-wide table merged from them, doctor --cluster's checks."""
