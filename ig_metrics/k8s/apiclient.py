"""A Kubernetes API client from wherever credentials are: a kubeconfig named by
the caller, the pod's service account (token and CA, KUBERNETES_SERVICE_HOST and
_PORT), $KUBECONFIG, or ~/.kube/config. The official client does the rest:
token rotation, client certificates, exec and OIDC plugins, contexts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")


class KubernetesUnavailable(RuntimeError):
    """No credentials for the API server were found, or they cannot be used."""


def api_client(kubeconfig: Path | None = None, *, environ: Mapping[str, str] = os.environ,
               service_account_dir: Path = SERVICE_ACCOUNT_DIR):
    """A kubernetes.client.ApiClient, or KubernetesUnavailable saying what is missing."""
    from kubernetes import client, config

    try:
        if kubeconfig is not None:
            return _from_kubeconfig(config, kubeconfig)
        if environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.incluster_config.InClusterConfigLoader(
                token_filename=str(service_account_dir / "token"),
                cert_filename=str(service_account_dir / "ca.crt"),
                environ=environ).load_and_set(configuration)
            return client.ApiClient(configuration)
        for candidate in (environ.get("KUBECONFIG", "").split(os.pathsep)[0],
                          str(DEFAULT_KUBECONFIG.expanduser())):
            if candidate and Path(candidate).is_file():
                return _from_kubeconfig(config, Path(candidate))
    except config.ConfigException as error:
        raise KubernetesUnavailable(f"cannot use the Kubernetes credentials: {error}") from error
    raise KubernetesUnavailable(
        "no Kubernetes credentials: run in a pod with a service account (KUBERNETES_SERVICE_HOST "
        "is not set), or give a kubeconfig ($KUBECONFIG or ~/.kube/config)")


def _from_kubeconfig(config, path: Path):
    if not path.is_file():
        raise KubernetesUnavailable(f"kubeconfig {path} does not exist")
    return config.new_client_from_config(config_file=str(path), persist_config=False)
