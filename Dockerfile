# syntax=docker/dockerfile:1
# The ig-metrics image that `ig-metrics deploy` runs on every node: Debian's bcc
# (python3-bpfcc; bcc is not on PyPI) and ig-metrics in a venv that sees it.
# Kernel headers are not in the image: they must match each node's kernel, so
# the DaemonSet mounts the node's /lib/modules and /usr/src.
#
#   docker build -t registry.example/ig-metrics:0.1.0 .
#   docker push registry.example/ig-metrics:0.1.0
#   ig-metrics deploy --gadget tcp --image registry.example/ig-metrics:0.1.0 ...
#
# Reproducible: the base is pinned by digest, the Python packages by
# requirements.lock (scripts/lock.sh writes it), installed exactly (--no-deps,
# then `pip check`). Behind a proxy or a private index, give pip its index
# and CA (neither ends up in the image: only the build stage sees them):
#
#   docker build --build-arg PIP_INDEX_URL=https://pypi.internal/simple \
#       --secret id=pip-ca,src=/etc/ssl/certs/internal-ca.pem -t ... .
#
# PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_TRUSTED_HOST and PIP_NO_INDEX work the
# same way. BASE replaces the base (e.g. a local debootstrap of bookworm);
# docs/kubernetes.md gives the image's size and what is in it.
ARG BASE=docker.io/library/debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

# What runs: Python and bcc with the LLVM and clang libraries bcc compiles
# gadgets with at run time; no recommends, no documentation, no apt lists.
FROM ${BASE} AS runtime
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
        'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/lintian/*' \
        > /etc/dpkg/dpkg.cfg.d/ig-metrics-nodoc \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-bpfcc ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log

# Where the venv is built: pip and setuptools stay here.
FROM runtime AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv --system-site-packages /opt/ig-metrics
ARG PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements.lock /src/
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/ig-metrics/bin/pip install --no-deps --only-binary=:all: -r /src/requirements.lock
# Only what the package is built from (pyproject names README.md as its readme).
COPY pyproject.toml README.md /src/
COPY ig_metrics /src/ig_metrics
# Then, once `pip check` has seen the lock complete, what is never imported goes
# (docs/kubernetes.md, "The image", measures each): the asyncio half of the
# kubernetes client (68 MB; ig-metrics uses its synchronous client) and the
# packages only it imports (aiohttp and its dependencies, 14 MB); the packages'
# own tests (18 MB, numpy's nearly all), type stubs (*.pyi, 3 MB), and numpy's
# build-time parts (f2py, distutils, C headers, static library: 5 MB). The
# bytecode stays: the root file system is read-only in the pod, so without it
# every start would compile the kubernetes client again.
RUN /opt/ig-metrics/bin/pip install --no-deps --no-build-isolation /src \
    && /opt/ig-metrics/bin/pip check \
    && /opt/ig-metrics/bin/pip uninstall -y -q aiohttp aiohttp-retry aiohappyeyeballs \
        aiosignal attrs frozenlist multidict propcache yarl \
    && /opt/ig-metrics/bin/pip uninstall -y -q setuptools pip \
    && cd /opt/ig-metrics/lib/python3*/site-packages \
    && rm -rf kubernetes/aio numpy/f2py numpy/distutils numpy/_core/include \
        numpy/_core/lib /opt/ig-metrics/bin/f2py /opt/ig-metrics/bin/numpy-config \
    && find . -type d -name tests -prune -exec rm -rf {} + \
    && find . -name '*.pyi' -delete

FROM runtime
COPY --from=build /opt/ig-metrics /opt/ig-metrics
# `ig-metrics` and the probes' `python3` are the venv's. The root file system
# is read-only in the pod: no bytecode is written at run time (pip compiled it).
ENV PATH=/opt/ig-metrics/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["ig-metrics"]
CMD ["--help"]
