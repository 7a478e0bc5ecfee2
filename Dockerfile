# The ig-metrics image that `ig-metrics deploy` runs on every node: Debian's bcc
# (python3-bpfcc; bcc is not on PyPI) and ig-metrics installed in a venv that
# sees it. Kernel headers are not in the image: they must match each node's
# kernel, so the DaemonSet mounts the node's /lib/modules and /usr/src.
#
#   docker build -t registry.example/ig-metrics:0.1.0 .
#   docker push registry.example/ig-metrics:0.1.0
#   ig-metrics deploy --gadget tcp --image registry.example/ig-metrics:0.1.0 ...
FROM debian:bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-bpfcc ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv --system-site-packages /opt/ig-metrics

# Only what the package is built from (pyproject names README.md as its readme).
COPY pyproject.toml README.md /src/
COPY ig_metrics /src/ig_metrics
RUN /opt/ig-metrics/bin/pip install --no-cache-dir /src && rm -rf /src

# `ig-metrics` and the readiness probe's `python3` are the venv's. The root file
# system is read-only in the pod: no bytecode is written at run time.
ENV PATH=/opt/ig-metrics/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["ig-metrics"]
CMD ["--help"]
