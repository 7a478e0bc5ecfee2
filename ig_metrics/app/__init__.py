"""The top of the core: what assembles the layers below into what a command
runs: a run (agent: bpf + gadgets + k8s + pipeline + exporters) and the gadget
catalog (gadgets + self-metrics + Prometheus names, for describe and the docs)."""
