"""Containers and Kubernetes: cgroup ids to pods, pod metadata, deploy's manifests."""
