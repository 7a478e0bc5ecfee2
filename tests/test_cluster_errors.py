"""What `run --cluster`, `top --cluster` and `doctor --cluster` say when the
cluster is not there or says no, and that nothing is left behind then. The
API server is tests/k8s_apiserver.py, which STANDS IN FOR A CLUSTER'S API
SERVER (there is no cluster here) and validates every object sent to it
against the Kubernetes OpenAPI schemas. No node runs a gadget in these tests
(no BPF needed): they stop before a pod could start, or their nodes' kubelets
(tests/k8s_kubelet.py, which STANDS IN FOR THE KUBELETS) cannot pull the image;
the nodes that run gadgets are in test_cluster_run.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest

from ig_metrics.cluster.api import connect
from ig_metrics.cluster.objects import plan_run
from ig_metrics.deploy.manifests import RUN_LABEL, DeployOptions
from tests.k8s_apiserver import (
    SCHEMA_VERSION,
    FakeApiServer,
    cluster_with_namespace,
    write_kubeconfig,
)
from tests.k8s_kubelet import FakeNode, Kubelet

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
NAMESPACE = "ig-metrics"


def ig_metrics(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if name != "KUBECONFIG"}
    environment.update(env or {})
    return subprocess.run([IG_METRICS, *args], capture_output=True, text=True, timeout=60,
                          env=environment)


@pytest.fixture
def api(tmp_path):
    with cluster_with_namespace(tmp_path, NAMESPACE) as server:
        yield server


def run_cluster(api, *flags: str) -> subprocess.CompletedProcess:
    return ig_metrics("run", "--gadget", "tcp", "--cluster", "--kubeconfig",
                      str(api.kubeconfig), "--namespace", NAMESPACE, "--no-tui",
                      "--duration", "30s", *flags,
                      *(() if "--image" in flags else ("--image", "registry.example/ig-metrics:test")))


def test_a_right_the_access_review_denies_is_named_and_nothing_is_created(api):
    api.forbidden = {("create", "daemonsets"), ("get", "pods/proxy")}
    result = run_cluster(api)
    assert result.returncode == 1, result.stderr
    assert ("error: forbidden: you may not create daemonsets (apps) in namespace ig-metrics; "
            "you may not get pods/proxy in namespace ig-metrics (context test, server "
            f"{api.url})") in result.stderr
    assert api.mutations() == [] and api.stored() == []


def test_a_create_refused_midway_deletes_what_the_run_had_created(api):
    api.refused = {("create", "daemonsets")}          # reviews allow it; the request is refused
    result = run_cluster(api)
    assert result.returncode == 1, result.stderr
    assert "error: forbidden: you may not create daemonsets in namespace ig-metrics" \
        in result.stderr
    assert 'cannot create resource "daemonsets"' in result.stderr    # the API server's words
    assert api.stored() == []
    methods = [(method, path.rsplit("/", 2)[-2] if method == "DELETE" else path.rsplit("/")[-1])
               for method, path in api.mutations()]
    assert methods == [("POST", "serviceaccounts"), ("POST", "configmaps"),
                       ("POST", "daemonsets"), ("DELETE", "configmaps"),
                       ("DELETE", "serviceaccounts")]


def test_an_unreachable_api_server_is_named_with_its_context(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
current-context: prod
clusters: [{{name: prod, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: me, user: {{token: t}}}}]
contexts: [{{name: prod, context: {{cluster: prod, user: me}}}}]
""")
    for command in (["run", "--gadget", "tcp", "--cluster", "--image", "registry.example/i:1"],
                    ["top", "--cluster"]):
        result = ig_metrics(*command, "--kubeconfig", str(kubeconfig), "--no-tui")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: cannot reach the API server (context prod, server "
            f"https://127.0.0.1:{port}): [Errno 111] Connection refused"), result.stderr


def test_run_cluster_without_an_image_is_refused_before_anything_is_sent(api):
    result = ig_metrics("run", "--gadget", "tcp", "--cluster", "--kubeconfig",
                        str(api.kubeconfig), "--namespace", NAMESPACE, "--no-tui")
    assert result.returncode == 2, result.stderr
    assert "--cluster needs --image" in result.stderr
    assert api.writes == [], "nothing may be created"


def test_no_kubeconfig_and_an_unknown_context(tmp_path, api):
    result = ig_metrics("run", "--gadget", "tcp", "--cluster", "--image", "registry.example/i:1",
                        env={"HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "error: no kubeconfig: $KUBECONFIG is not set and ~/.kube/config does not exist" \
        in result.stderr
    result = ig_metrics("top", "--cluster", "--kubeconfig", str(api.kubeconfig),
                        "--context", "staging")
    assert result.returncode == 1
    assert f"--context: no context 'staging' in {api.kubeconfig} (it has: test)" in result.stderr


def test_flags_of_a_local_run_are_refused_with_cluster(api):
    result = run_cluster(api, "--pid", "1", "--interval", "5s")
    assert result.returncode == 2
    assert "--interval, --pid: not with --cluster" in result.stderr
    assert api.mutations() == []


def test_top_without_a_deployment_says_how_to_make_one(api):
    result = ig_metrics("top", "--cluster", "--kubeconfig", str(api.kubeconfig), "--no-tui")
    assert result.returncode == 1
    assert "no ig-metrics DaemonSet in namespace ig-metrics" in result.stderr
    assert "ig-metrics deploy ... --apply" in result.stderr
    assert api.mutations() == []


def test_doctor_cluster_checks_each_right_and_the_version(api):
    result = ig_metrics("doctor", "--cluster", "--kubeconfig", str(api.kubeconfig),
                        "--output", "json")
    assert result.returncode == 0, result.stdout
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["cluster:version"]["status"] == "ok"
    assert "v1.32.2" in checks["cluster:version"]["detail"]
    assert {name for name in checks if name.startswith("rbac:")} == {
        f"rbac:{verb} {resource}" for verb, resource in (
            ("create", "serviceaccounts"), ("delete", "serviceaccounts"),
            ("create", "configmaps"), ("delete", "configmaps"),
            ("create", "daemonsets (apps)"), ("delete", "daemonsets (apps)"),
            ("list", "pods"), ("watch", "pods"), ("get", "pods/proxy"),
            ("get", "pods/log"), ("list", "daemonsets (apps)"))}
    assert all(check["status"] == "ok" for name, check in checks.items()
               if name.startswith("rbac:") and name != "rbac:list daemonsets (apps)")

    api.forbidden = {("get", "pods/proxy"), ("list", "daemonsets")}
    result = ig_metrics("doctor", "--cluster", "--kubeconfig", str(api.kubeconfig))
    assert result.returncode == 1
    assert "rbac:get pods/proxy" in result.stdout and "1 required check failed" in result.stdout
    assert api.mutations() == []


def test_two_runs_create_objects_that_do_not_collide(api, tmp_path):
    profiles = Path(__file__).parent.parent / "ig_metrics" / "profiles"
    plans = [plan_run(DeployOptions("tcp", "local", namespace=NAMESPACE), profiles) for _ in range(2)]
    assert plans[0].options.run_id != plans[1].options.run_id
    names = [{(m["kind"], m["metadata"]["name"]) for m in plan.manifests} for plan in plans]
    assert not names[0] & names[1]
    for plan in plans:
        daemon_set = plan.manifests[-1]
        assert daemon_set["spec"]["selector"]["matchLabels"][RUN_LABEL] == plan.options.run_id
        assert daemon_set["spec"]["template"]["spec"]["serviceAccountName"] == \
            plan.options.workload
        for manifest in plan.manifests:
            kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
            assert manifest["metadata"]["labels"][RUN_LABEL] == plan.options.run_id
    cluster = connect(api.kubeconfig)
    for plan in plans:
        for manifest in plan.manifests:
            cluster.create(manifest)        # a collision would be 409 AlreadyExists
    cluster.close()
    assert len(api.stored()) == 6


def test_a_profile_without_a_readable_endpoint_is_deployed_as_written(tmp_path):
    """The CLI reads each agent's /summary on its health port, not a Prometheus
    endpoint: a profile whose only endpoint asks for a password runs as is."""
    (tmp_path / "p.yaml").write_text("""
exporters:
  guarded: {type: prometheus, listen: ":9464", basic_auth: {prom: "$2b$12$abcdefghijklmnopqrstuu5i7EWYGSCuJ/mDF7Ny2HvwY5O5Hdqvu"}}
profiles:
  guarded: {exporters: [guarded], interval: 5s}
""")
    plan = plan_run(DeployOptions("tcp", "guarded", namespace=NAMESPACE), tmp_path)
    assert sorted(plan.manifests[1]["data"]) == ["p.yaml"]
    command = plan.manifests[2]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--profile") + 1] == "guarded"
    assert command[command.index("--health-listen") + 1] == "0.0.0.0:9465"


@pytest.mark.parametrize("version", ["1.29", "1.25", "1.33"])
def test_run_cluster_writes_the_daemonset_for_the_servers_version(tmp_path, version):
    """A stand-in API server of `version` validates what it is sent against
    that version's schemas, as a real one refuses a field it does not know
    (recursiveReadOnly before 1.30)."""
    with FakeApiServer(version=version) as api:
        api.existing_namespaces.add(NAMESPACE)
        api.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api)
        result = run_cluster(api, "--duration", "1s")
        assert api.invalid == [], api.invalid
    assert f"manifests for {version})" in result.stderr, result.stderr
    posted = [path for method, path in api.mutations() if method == "POST"]
    assert any(path.endswith("/daemonsets") for path in posted), result.stderr


@pytest.fixture
def unpullable(api, tmp_path):
    """Two nodes whose kubelets cannot pull the image (tests/k8s_kubelet.py stands in
    for them): pods that never become ready, and no BPF needed."""
    kubelet = Kubelet(api, [FakeNode(name, address, image_pull_fails=True) for name, address
                            in (("node-a", "192.0.2.1"), ("node-b", "192.0.2.2"))],
                      tmp_path / "kubelet")
    yield api
    kubelet.stop()
    assert kubelet.invalid == []


def test_duration_ends_a_run_whose_pods_never_became_ready_and_deletes_it(unpullable):
    api = unpullable
    result = run_cluster(api, "--image", "registry.example/missing:1", "--duration", "4s")
    assert result.returncode == 1, result.stderr
    for node in ("node-a", "node-b"):
        assert re.search(rf"{node}: failed \((ErrImagePull|ImagePullBackOff): .*"
                         r"registry\.example/missing:1", result.stderr), result.stderr
    assert "error: no node was read" in result.stderr
    assert "every pod of the run has ended" in result.stderr
    assert api.stored() == [] and api.pods_of(NAMESPACE, None) == []


def test_sigterm_while_waiting_deletes_what_the_run_created(unpullable, tmp_path):
    api = unpullable
    log = tmp_path / "stderr"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [IG_METRICS, "run", "--gadget", "tcp", "--cluster", "--kubeconfig",
             str(api.kubeconfig), "--namespace", NAMESPACE, "--no-tui",
             "--image", "registry.example/ig-metrics:test"],
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while len(api.pods_of(NAMESPACE, None)) < 2 or "node-b: failed" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert len(api.stored()) == 3
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert api.stored() == [] and api.pods_of(NAMESPACE, None) == []
    assert "deleted: ServiceAccount" in log.read_text()


def test_node_selects_the_nodes_the_run_schedules_on(unpullable):
    api = unpullable
    result = run_cluster(api, "--node", "node-b", "--duration", "3s")
    assert "node-b: failed (" in result.stderr and "node-a:" not in result.stderr, \
        result.stderr
    assert api.stored() == []
    result = run_cluster(api, "--node-selector", "pool")
    assert result.returncode == 2
    assert "--node-selector: 'pool' is not KEY=VALUE" in result.stderr
