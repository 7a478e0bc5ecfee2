"""OpenTelemetry semantic-convention attribute names that more than one layer
writes or reads (the decoders, Kubernetes attribution, the live table)."""

# `container.runtime` was renamed `container.runtime.name` (semconv 1.29); the
# new name is the one to emit.
CONTAINER_ID = "container.id"
CONTAINER_RUNTIME = "container.runtime.name"
POD_UID = "k8s.pod.uid"
POD_NAME = "k8s.pod.name"
NAMESPACE = "k8s.namespace.name"
NODE_NAME = "k8s.node.name"
CONTAINER_NAME = "k8s.container.name"
POD_LABEL_PREFIX = "k8s.pod.label."
# A peer address that is a pod IP of the cluster. OpenTelemetry has no peer
# pod attributes; these put "peer" where network.peer.address puts it, in the
# k8s namespace, so they read as the peer's k8s.pod.name and k8s.namespace.name.
PEER_POD_NAME = "k8s.peer.pod.name"
PEER_NAMESPACE = "k8s.peer.namespace.name"
# Every attribute a pod's owner may give (k8s.podinfo.OWNER_KINDS; docs,
# attribute selection).
OWNER_ATTRIBUTES = ("k8s.replicaset.name", "k8s.deployment.name", "k8s.daemonset.name",
                    "k8s.statefulset.name", "k8s.job.name", "k8s.cronjob.name",
                    "k8s.replicationcontroller.name")
