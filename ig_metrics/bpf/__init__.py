"""The bcc boundary: environment checks, loading and attaching gadgets, reading
maps, the cgroup v2 hierarchy as BPF's cgroup ids see it (cgroupfs)."""
