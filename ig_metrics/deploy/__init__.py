"""Deploying the agent as a DaemonSet: the manifests (by Kubernetes version),
the profiles the pods get, the privileges a gadget needs, the seccomp profile."""
