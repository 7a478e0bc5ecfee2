"""Pod metadata through the real Kubernetes client code (kubeconfig, in-cluster
service account, list, watch) against tests/k8s_apiserver.py, a local HTTP
server that STANDS IN FOR THE API SERVER: there is no cluster here."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest

from ig_metrics.k8s.apiclient import KubernetesUnavailable, api_client
from ig_metrics.k8s.pods import PodCache, PodCacheConfig
from ig_metrics.k8s.podstores import PodStore
from ig_metrics.k8s.reflector import Reflector
from ig_metrics.model.semconv import PEER_NAMESPACE, PEER_POD_NAME
from ig_metrics.retry.backoff import Backoff
from tests.k8s_apiserver import FakeApiServer, make_pod, write_kubeconfig

KUBERNETES_VERSIONS = ("1.28", "1.30", "1.32")
NODE = "node-a"
CONTAINER_ID = "4f" * 32


def eventually(predicate, timeout: float = 5.0):
    """The predicate's first true value within `timeout`, else the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout} s: {predicate.__doc__ or predicate}")
        time.sleep(0.02)


def validated(pod: dict) -> dict:
    """`pod`, once it validates against the Pod schema of each Kubernetes version."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate({**pod, "metadata": {**pod["metadata"],
                                                          "resourceVersion": "1"}},
                                     version, strict=True)
    return pod


@pytest.fixture
def api():
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def start_cache(api, tmp_path):
    caches = []

    def start(**settings) -> PodCache:
        settings = {"node_name": NODE, "kubeconfig": write_kubeconfig(tmp_path / "kubeconfig", api),
                    "backoff_initial": 0.05, "backoff_max": 0.2, "watch_timeout": 30, **settings}
        cache = PodCache(PodCacheConfig(**settings))
        cache.start()
        caches.append(cache)
        assert cache.wait_synced(5), cache.last_errors
        return cache

    yield start
    for cache in caches:
        cache.stop()


def test_what_the_stand_in_serves_validates_against_the_kubernetes_schema(api):
    api.add(validated(make_pod("web-1", ip="10.1.0.5")))
    api.add(validated(make_pod("job-1", node="node-b", phase="Succeeded",
                               owner=("Job", "backup-29000000"))))
    request = urllib.request.Request(f"{api.url}/api/v1/pods?limit=1",
                                     headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request) as response:
        first_page = json.load(response)
    assert first_page["metadata"]["continue"]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(first_page, version, strict=True)


def test_adds_modifications_and_deletes_reach_the_cache(api, start_cache):
    web = validated(make_pod("web-1", ip="10.1.0.5",
                             containers=(("app", f"containerd://{CONTAINER_ID}"),)))
    api.add(web)
    cache = start_cache()
    uid = web["metadata"]["uid"]
    assert cache.pod(uid).attributes(CONTAINER_ID) == (
        ("k8s.pod.name", "web-1"), ("k8s.namespace.name", "default"),
        ("k8s.container.name", "app"), ("k8s.node.name", NODE))

    added = validated(make_pod("db-0", namespace="data", ip="10.1.0.6"))
    api.add(added)
    assert eventually(lambda: cache.pod(added["metadata"]["uid"])).namespace == "data"

    # The pod restarted its container: a new container id, a new name.
    restarted = validated(make_pod("web-1", uid=uid, ip="10.1.0.5",
                                   containers=(("app-v2", "containerd://" + "5e" * 32),)))
    api.modify(restarted)
    pod = eventually(lambda: (p := cache.pod(uid)) and "5e" * 32 in p.containers and p)
    assert pod.containers["5e" * 32].name == "app-v2"
    assert CONTAINER_ID not in pod.containers

    api.delete(added)
    eventually(lambda: cache.pod(added["metadata"]["uid"]) is None)
    assert cache.pod(uid) is not None


def test_only_the_pods_of_this_node_are_kept(api, start_cache):
    here, elsewhere = make_pod("here"), make_pod("elsewhere", node="node-b", ip="10.2.0.9")
    api.add(here)
    api.add(elsewhere)
    cache = start_cache()
    assert cache.pod(here["metadata"]["uid"]) is not None
    assert cache.pod(elsewhere["metadata"]["uid"]) is None
    node_lists = [q for q in api.list_requests() if q.get("fieldSelector")]
    assert node_lists and node_lists[0]["fieldSelector"] == [f"spec.nodeName={NODE}"]


def test_owner_workloads_are_resolved(api, start_cache):
    pods = {
        "deployment": make_pod("web-7d4b9c6f5-x2x4k", owner=("ReplicaSet", "web-7d4b9c6f5"),
                               labels={"pod-template-hash": "7d4b9c6f5"}),
        "replicaset": make_pod("bare-abcde", owner=("ReplicaSet", "bare")),
        "daemonset": make_pod("agent-9xk2p", owner=("DaemonSet", "agent")),
        "statefulset": make_pod("db-0", owner=("StatefulSet", "db")),
        "cronjob": make_pod("backup-29471520-5kq8d", owner=("Job", "backup-29471520")),
        "job": make_pod("migrate-x8k2l", owner=("Job", "migrate")),
        "none": make_pod("standalone"),
    }
    for pod in pods.values():
        api.add(validated(pod))
    cache = start_cache()
    owner = {kind: dict(cache.pod(pod["metadata"]["uid"]).owner) for kind, pod in pods.items()}
    assert owner == {
        "deployment": {"k8s.replicaset.name": "web-7d4b9c6f5", "k8s.deployment.name": "web"},
        "replicaset": {"k8s.replicaset.name": "bare"},
        "daemonset": {"k8s.daemonset.name": "agent"},
        "statefulset": {"k8s.statefulset.name": "db"},
        "cronjob": {"k8s.job.name": "backup-29471520", "k8s.cronjob.name": "backup"},
        "job": {"k8s.job.name": "migrate"},
        "none": {},
    }
    deployment = cache.pod(pods["deployment"]["metadata"]["uid"])
    assert ("k8s.deployment.name", "web") in deployment.attributes()


def test_peer_ips_resolve_to_pods_of_the_whole_cluster(api, start_cache):
    remote = make_pod("api-0", namespace="shop", node="node-b", ip="10.2.0.7")
    host_net = make_pod("kube-proxy-x", namespace="kube-system", node="node-b", ip="10.0.0.2",
                        host_network=True)
    api.add(remote)
    api.add(host_net)
    cache = start_cache()
    assert cache.peer("10.2.0.7").attributes() == ((PEER_POD_NAME, "api-0"),
                                                  (PEER_NAMESPACE, "shop"))
    assert cache.peer("10.0.0.2") is None        # a node's IP, shared by host-network pods

    api.delete(remote)
    eventually(lambda: cache.peer("10.2.0.7") is None)
    reused = make_pod("api-1", namespace="shop", node="node-b", ip="10.2.0.7")
    api.add(reused)
    assert eventually(lambda: cache.peer("10.2.0.7")).name == "api-1"
    finished = make_pod("api-1", uid=reused["metadata"]["uid"], namespace="shop", node="node-b",
                        ip="10.2.0.7", phase="Succeeded")
    api.modify(finished)
    eventually(lambda: cache.peer("10.2.0.7") is None)


def test_peers_from_this_node_only_need_no_cluster_wide_watch(api, start_cache):
    api.add(make_pod("local", ip="10.1.0.3"))
    api.add(make_pod("remote", node="node-b", ip="10.2.0.3"))
    cache = start_cache(peers="node")
    assert cache.peer("10.1.0.3").name == "local"
    assert cache.peer("10.2.0.3") is None
    assert all(query.get("fieldSelector") for query in api.requests)


def test_an_expired_watch_is_answered_by_a_new_list(api, start_cache):
    pod = make_pod("web-1", ip="10.1.0.5")
    api.add(pod)
    cache = start_cache(peers="off")
    [reflector] = cache.reflectors
    # While the agent is cut off, the server compacts its history and the pod
    # changes: only a new list can show the change.
    api.change_unseen(make_pod("web-1", uid=pod["metadata"]["uid"], ip="10.1.0.5",
                               labels={"version": "2"},
                               containers=(("app-v2", "cri-o://" + "1" * 64),)))
    api.drop_watches()
    eventually(lambda: "1" * 64 in cache.pod(pod["metadata"]["uid"]).containers)
    assert reflector.expired_watches == 1 and reflector.lists == 2
    relist = api.list_requests()[-1]
    assert "resourceVersion" not in relist       # after a 410, the latest state, not the cache's
    assert cache.pod(pod["metadata"]["uid"]).containers["1" * 64].runtime == "cri-o"


def test_a_lost_connection_resumes_the_watch_where_it_was(api, start_cache):
    api.add(make_pod("first"))
    cache = start_cache(peers="off")
    [reflector] = cache.reflectors
    second = make_pod("second")
    api.add(second)
    eventually(lambda: cache.pod(second["metadata"]["uid"]))
    watches = len(api.watch_requests())
    api.drop_watches()
    third = make_pod("third")                # made while the agent is reconnecting
    api.add(third)
    eventually(lambda: cache.pod(third["metadata"]["uid"]))
    resumed = api.watch_requests()[watches]
    assert resumed["resourceVersion"] == [api.version_of(second)]
    assert reflector.lists == 1 and reflector.expired_watches == 0


def test_memory_is_bounded(api, start_cache):
    for index in range(5):
        api.add(make_pod(f"pod-{index}", ip=f"10.1.0.{index + 1}"))
    cache = start_cache(max_pods=3, max_peer_pods=2)
    assert len(cache.pods) == 3 and cache.pods.refused == 2
    assert len(cache.peers) == 2 and cache.peers.refused == 3
    api.add(make_pod("pod-5"))
    eventually(lambda: cache.pods.refused == 3)
    assert len(cache.pods) == 3


def test_pod_labels_only_when_asked_for(api, start_cache):
    pod = make_pod("web-1", labels={"app": "web", "tier": "front"})
    api.add(pod)
    without = start_cache(peers="off").pod(pod["metadata"]["uid"]).attributes()
    with_labels = start_cache(peers="off", include_labels=True).pod(pod["metadata"]["uid"])
    assert not any(name.startswith("k8s.pod.label.") for name, _ in without)
    assert with_labels.labels == (("k8s.pod.label.app", "web"), ("k8s.pod.label.tier", "front"))
    assert set(with_labels.labels) <= set(with_labels.attributes())


def test_lists_are_read_page_by_page(api, tmp_path):
    for index in range(5):
        api.add(make_pod(f"pod-{index}"))
    from kubernetes.client import CoreV1Api

    client = api_client(write_kubeconfig(tmp_path / "kubeconfig", api))
    store = PodStore(10)
    reflector = Reflector("paged", CoreV1Api(client).list_pod_for_all_namespaces, store,
                          page_size=2, backoff=Backoff(0.05, 0.1))
    reflector.start()
    try:
        assert reflector.synced.wait(5)
        assert len(store) == 5
        pages = api.list_requests()
        assert [q.get("continue") for q in pages] == [None, ["2"], ["4"]]
    finally:
        reflector.stop(2)


@pytest.mark.parametrize("moment", ["while connecting", "while waiting for events"])
def test_stop_is_prompt(api, start_cache, moment):
    cache = start_cache(watch_timeout=300)
    if moment == "while waiting for events":
        eventually(lambda: len(api.watch_requests()) == 2)
    cache.stop(timeout=5)      # a watch open for 300 s is closed, not waited out
    assert not any(reflector.running for reflector in cache.reflectors)


def test_lookups_never_wait_for_an_unreachable_api_server(tmp_path):
    with FakeApiServer() as gone:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", gone)
    cache = PodCache(PodCacheConfig(node_name=NODE, kubeconfig=kubeconfig,
                                    backoff_initial=0.05, backoff_max=0.1))
    cache.start()
    assert cache.pod("any") is None and cache.peer("10.0.0.1") is None
    errors = eventually(lambda: len(cache.last_errors) == 2 and cache.last_errors)
    assert "Connection refused" in errors["node"]
    cache.stop()


def test_a_token_without_rights_is_reported_with_what_to_grant(api, tmp_path):
    api.token = "another-token"            # the kubeconfig's token is no longer accepted
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
    api.token = "test-token"
    cache = PodCache(PodCacheConfig(node_name=NODE, kubeconfig=kubeconfig, peers="off",
                                    backoff_initial=0.05, backoff_max=0.1))
    cache.start()
    try:
        error = eventually(lambda: cache.last_errors.get("node"))
        assert "401" in error and "get, list and watch on pods" in error
        assert not cache.reflectors[0].synced.is_set()
    finally:
        cache.stop()


def test_start_says_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(KubernetesUnavailable, match="NODE_NAME"):
        PodCache(PodCacheConfig(node_name=None)).start()
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubernetesUnavailable, match="KUBERNETES_SERVICE_HOST"):
        api_client(environ={})
    with pytest.raises(KubernetesUnavailable, match="does not exist"):
        api_client(tmp_path / "missing")
    with pytest.raises(ValueError, match="peers must be one of"):
        PodCacheConfig(peers="everywhere")


@pytest.fixture
def server_certificate(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a cluster CA would sign one."""
    cert, key = tmp_path / "apiserver.crt", tmp_path / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_in_cluster_service_account_over_tls(server_certificate, tmp_path):
    cert, key = server_certificate
    account = tmp_path / "serviceaccount"
    account.mkdir()
    with FakeApiServer(token="projected-token", tls=(cert, key)) as api:
        (account / "token").write_text(api.token)
        (account / "ca.crt").write_bytes(cert.read_bytes())
        pod = make_pod("web-1", ip="10.1.0.5")
        api.add(pod)
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        client = api_client(environ=environ, service_account_dir=account)
        cache = PodCache(PodCacheConfig(node_name=NODE, peers="off"), client=client)
        cache.start()
        try:
            assert cache.wait_synced(5), cache.last_errors
            assert cache.pod(pod["metadata"]["uid"]).name == "web-1"
        finally:
            cache.stop()


def test_lookups_run_beside_the_watch_thread(api, start_cache):
    """Readers take no lock: a reader sees a pod or not, never an error."""
    pods = [make_pod(f"pod-{index}") for index in range(50)]
    cache = start_cache(peers="off")
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                for pod in pods:
                    info = cache.pod(pod["metadata"]["uid"])
                    assert info is None or info.name == pod["metadata"]["name"]
        except BaseException as error:   # handed to the test thread, which fails on it
            failures.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    for pod in pods:
        api.add(pod)
    eventually(lambda: len(cache.pods) == 50)
    for pod in pods:
        api.delete(pod)
    eventually(lambda: len(cache.pods) == 0)
    done.set()
    reader.join()
    assert not failures


def test_backoff_doubles_up_to_its_ceiling_with_jitter_below_it():
    top = Backoff(0.5, 4.0, jitter=lambda: 1.0)          # the largest jitter: the full delay
    assert [top.next_wait() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    top.reset()
    assert top.next_wait() == 0.5
    bottom = Backoff(0.5, 4.0, jitter=lambda: 0.0)       # the smallest: half of it
    assert [bottom.next_wait() for _ in range(3)] == [0.25, 0.5, 1.0]
