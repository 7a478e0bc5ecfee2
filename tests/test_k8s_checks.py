"""`doctor`'s attribution checks. The HTTP server of tests/k8s_apiserver.py
STANDS IN FOR THE KUBERNETES API SERVER: there is no cluster here."""

from __future__ import annotations

import socket
from pathlib import Path

from ig_metrics.bpf.environment import HostPaths
from ig_metrics.k8s.checks import check_cgroup_hierarchy, check_kubernetes_api, check_new_cgroups
from tests.k8s_apiserver import FakeApiServer, make_pod, write_kubeconfig


def test_the_api_check_lists_the_pods_of_this_node(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        api.add(make_pod("web-1", node="node-a"))
        api.add(make_pod("web-2", node="node-a"))
        api.add(make_pod("elsewhere", node="node-b"))
        config = write_kubeconfig(tmp_path / "kubeconfig", api)
        check = check_kubernetes_api({"NODE_NAME": "node-a", "KUBECONFIG": str(config)})
    assert check.ok and not check.required
    assert check.detail.startswith(f"{api.url}: 2 pods on node node-a")


def test_the_api_check_says_what_the_server_refused(tmp_path: Path) -> None:
    with FakeApiServer(token="the-right-one") as api:
        config = write_kubeconfig(tmp_path / "kubeconfig", api)
        api.token = "another"                   # the kubeconfig's token is refused
        check = check_kubernetes_api({"NODE_NAME": "node-a", "KUBECONFIG": str(config)})
    assert not check.ok
    assert "answered 401 Unauthorized" in check.detail and "list and watch on pods" in check.fix


def test_the_api_check_says_when_the_server_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with FakeApiServer() as api:
        config = write_kubeconfig(tmp_path / "kubeconfig", api)
    config.write_text(config.read_text().replace(f":{api.port}", f":{port}"))
    check = check_kubernetes_api({"NODE_NAME": "node-a", "KUBECONFIG": str(config)})
    assert not check.ok and "cannot be reached" in check.detail


def test_the_api_check_without_node_name_or_credentials(tmp_path: Path) -> None:
    assert "NODE_NAME is not set" in check_kubernetes_api({}).detail
    check = check_kubernetes_api({"NODE_NAME": "node-a", "KUBECONFIG": str(tmp_path / "none"),
                                  "HOME": str(tmp_path)})
    assert not check.ok and "no Kubernetes credentials" in check.detail


def test_the_cgroup_check_finds_the_hierarchy_and_says_when_there_is_none(tmp_path) -> None:
    assert check_cgroup_hierarchy().ok                  # this machine mounts cgroup2
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")
    check = check_cgroup_hierarchy(mounts)
    assert not check.ok and "no cgroup2 file system" in check.detail


def test_the_cgroup_mkdir_check_says_whether_new_cgroups_are_recorded(tmp_path) -> None:
    here = check_new_cgroups()
    assert here.ok and not here.required             # this machine's kernel has it (6.18)
    assert "new cgroups' paths are recorded" in here.detail

    host = HostPaths(root=tmp_path)
    unmounted = check_new_cgroups(host)
    assert not unmounted.ok and "tracefs is not mounted" in unmounted.detail
    assert unmounted.fix.startswith("mount it: mount -t tracefs")

    event = tmp_path / "sys/kernel/tracing/events/cgroup/cgroup_mkdir"
    (tmp_path / "sys/kernel/tracing/events/sched").mkdir(parents=True)
    missing = check_new_cgroups(host)
    assert not missing.ok and "no cgroup:cgroup_mkdir tracepoint" in missing.detail
    assert "attributed to no container" in missing.detail

    event.mkdir(parents=True)
    # Before Linux 5.5 the id was an int that is not the cgroup id BPF sees.
    (event / "format").write_text("name: cgroup_mkdir\nformat:\n"
                                  "\tfield:int root;\toffset:8;\tsize:4;\tsigned:1;\n"
                                  "\tfield:int id;\toffset:12;\tsize:4;\tsigned:1;\n")
    old = check_new_cgroups(host)
    assert not old.ok and "Linux 5.5" in old.detail and "Linux 5.5" in old.fix
