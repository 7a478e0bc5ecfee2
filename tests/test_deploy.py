"""`ig-metrics deploy`: manifests that validate against the Kubernetes OpenAPI
schemas, a DaemonSet whose command `ig-metrics run` accepts and whose profiles
validate as the pod reads them, scrape annotations on the real port, and the
least privilege that eBPF tracing needs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import kubernetes_validate
import pytest
import typer.main
import yaml
from typer.exceptions import TyperException
from typer.testing import CliRunner

from ig_metrics.catalog.loading import load_catalog
from ig_metrics.cli import app
from ig_metrics.deploy.manifests import (
    HEALTH_PORT,
    DeployOptions,
    daemon_set,
    pod_environment,
    probe,
)
from ig_metrics.deploy.podprofiles import ScrapeEndpoint, set_listen
from ig_metrics.deploy.privileges import HOOK_KIND_NEEDS, PodNeeds, UnknownHookKind, pod_needs
from ig_metrics.gadgets import builtin_names, resolve
from ig_metrics.gadgets.hooks import HOOK_KINDS

KUBERNETES_VERSIONS = ("1.28", "1.30", "1.32")
OTLP_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector.observability.svc:4317"
REPO = Path(__file__).resolve().parent.parent

runner = CliRunner()


def deploy(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["deploy", *args], env=env)


def manifests_of(*args: str) -> dict[str, dict]:
    result = deploy(*args)
    assert result.exit_code == 0, result.output
    return {doc["kind"]: doc for doc in yaml.safe_load_all(result.stdout)}


def pod_spec(manifests: dict[str, dict]) -> dict:
    return manifests["DaemonSet"]["spec"]["template"]["spec"]


def write_profiles(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "profiles.yaml").write_text(text)
    return directory


@pytest.mark.parametrize("args", [
    ("--gadget", "tcp", "--profile", "local"),
    ("--gadget", "tcp", "--profile", "otlp-prod", "--env", OTLP_ENV),
    ("--gadget", "tcp", "--profile", "debug", "--namespace", "observability"),
    ("--gadget", "tcp", "--profile", "local", "--sys-admin"),
    ("--gadget", "tcp", "--profile", "local", "--seccomp", "localhost",
     "--cgroup2-path", "/sys/fs/cgroup/unified"),
    ("--gadget", "tcp,dns", "-g", "blockio", "--profile", "local"),
], ids=["local", "otlp-prod", "no-prometheus", "sys-admin", "seccomp-localhost-hybrid",
        "several-gadgets"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(args, version):
    """Each for the version it was written for (--kube-version)."""
    result = deploy(*args, "--kube-version", version)
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    assert [doc["kind"] for doc in documents] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
        "DaemonSet"]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("version, recursive", [("1.28", False), ("1.29", False),
                                                ("1.30", True), ("1.32", True)])
def test_host_mounts_are_recursively_read_only_where_the_cluster_knows_how(version, recursive):
    [container] = pod_spec(manifests_of("--gadget", "tcp", "--kube-version", version))[
        "containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name in ("cgroup", "modules", "usr-src"):
        assert mounts[name]["readOnly"] is True
        assert mounts[name].get("recursiveReadOnly") == ("IfPossible" if recursive else None)
        assert "mountPropagation" not in mounts[name]     # rro allows no propagation
    # tracefs keeps HostToContainer (a tracefs the node mounts later), hence not rro.
    assert mounts["tracefs"]["mountPropagation"] == "HostToContainer"
    assert "recursiveReadOnly" not in mounts["tracefs"]


def test_recursive_read_only_is_refused_by_a_schema_without_it():
    """Why --kube-version exists: an older API server rejects the field."""
    manifests = manifests_of("--gadget", "tcp", "--kube-version", "1.30")
    with pytest.raises(kubernetes_validate.ValidationError, match="recursiveReadOnly"):
        kubernetes_validate.validate(manifests["DaemonSet"], "1.28", strict=True)


def test_only_the_cgroup2_hierarchy_is_mounted():
    for path in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        spec = pod_spec(manifests_of("--gadget", "tcp", "--cgroup2-path", path))
        [volume] = [v for v in spec["volumes"] if v["name"] == "cgroup"]
        assert volume["hostPath"] == {"path": path, "type": "Directory"}
        [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "cgroup"]
        assert mount["mountPath"] == path


def test_seccomp_localhost_names_the_shipped_profile():
    result = deploy("--gadget", "tcp", "--seccomp", "localhost")
    assert result.exit_code == 0, result.output
    daemon = [d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "DaemonSet"][0]
    security = daemon["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security["seccompProfile"] == {"type": "Localhost",
                                          "localhostProfile": "ig-metrics/bpf.json"}
    assert "/var/lib/kubelet/seccomp/ig-metrics/bpf.json" in result.stderr


def test_the_seccomp_profile_allows_bpf_only_with_cap_bpf():
    result = runner.invoke(app, ["deploy", "--print-seccomp-profile"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    conditional = {(rule["names"][0], rule["includes"]["caps"][0])
                   for rule in profile["syscalls"] if "includes" in rule}
    assert {("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")} <= conditional
    unconditional = {name for rule in profile["syscalls"]
                     if not rule.get("includes") and not rule.get("args")
                     and rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert not unconditional & {"bpf", "perf_event_open", "unshare", "setns", "mount", "ptrace",
                                "clone3", "init_module", "kexec_load"}


def test_the_schemas_catch_a_broken_daemonset():
    """The validation above would fail on a real mistake."""
    daemon_set = manifests_of("--gadget", "tcp")["DaemonSet"]
    daemon_set["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilitys"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="capabilitys"):
        kubernetes_validate.validate(daemon_set, "1.30", strict=True)


def test_the_daemonset_command_is_what_ig_metrics_run_accepts():
    manifests = manifests_of("--gadget", "tcp", "--profile", "otlp-prod", "--env", OTLP_ENV)
    [container] = pod_spec(manifests)["containers"]
    program, *args = container["command"]
    assert program == "ig-metrics"
    command = typer.main.get_command(app)
    context = command.make_context(program, list(args))
    name, run, rest = command.resolve_command(context, list(args))
    params = run.make_context(name, rest, parent=context).params
    assert name == "run"
    assert (params["gadget"], params["profile"], params["no_tui"]) == (["tcp"], "otlp-prod", True)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "profiles")
    assert params["profiles_dir"] == Path(mount["mountPath"])
    with pytest.raises(TyperException, match="No such option"):
        run.make_context(name, [*rest, "--bogus"], parent=context)


def test_the_configmap_holds_profiles_that_validate_as_the_pod_reads_them(tmp_path):
    manifests = manifests_of("--gadget", "tcp", "--profile", "otlp-prod", "--env", OTLP_ENV)
    pod_profiles = tmp_path / "pod-profiles"
    pod_profiles.mkdir()
    for name, text in manifests["ConfigMap"]["data"].items():
        (pod_profiles / name).write_text(text)
    [container] = pod_spec(manifests)["containers"]
    environ = {item["name"]: item.get("value", "from-the-downward-api")
               for item in container["env"]}
    catalog = load_catalog([pod_profiles], environ=environ)
    assert not catalog.errors, catalog.errors
    profile = catalog.profile("otlp-prod")
    prometheus = next(e for e in profile.exporters if e.type == "prometheus")
    assert (prometheus.settings.host, prometheus.settings.port) == ("0.0.0.0", 9464)
    otlp = next(e for e in profile.exporters if e.type == "otlp-grpc")
    assert otlp.settings.endpoint == "otel-collector.observability.svc:4317"
    # The built-in files' comments travel with them.
    builtin = (REPO / "ig_metrics" / "profiles" / "exporters.yaml").read_text()
    comments = [line for line in builtin.splitlines() if line.lstrip().startswith("#")]
    shipped = manifests["ConfigMap"]["data"]["exporters.yaml"]
    assert all(line in shipped.splitlines() for line in comments)


def test_scrape_annotations_name_the_port_the_profile_listens_on(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", """\
exporters:
  scrape:
    type: prometheus
    listen: 127.0.0.1:9555
profiles:
  mine:
    exporters: [scrape]
""")
    manifests = manifests_of("--gadget", "tcp", "--profile", "mine",
                             "--profiles-dir", str(profiles))
    template = manifests["DaemonSet"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9555"
    [container] = template["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9555, "protocol": "TCP"},
                                  {"name": "health", "containerPort": HEALTH_PORT,
                                   "protocol": "TCP"}]
    data = manifests["ConfigMap"]["data"]["profiles.yaml"]
    assert 'listen: "0.0.0.0:9555"' in data


def test_a_profile_without_prometheus_gets_no_scrape_annotations_but_the_probes():
    manifests = manifests_of("--gadget", "tcp", "--profile", "debug")
    template = manifests["DaemonSet"]["spec"]["template"]
    assert not any(key.startswith("prometheus.io/") for key in template["metadata"]["annotations"])
    [container] = template["spec"]["containers"]
    assert container["ports"] == [{"name": "health", "containerPort": HEALTH_PORT,
                                   "protocol": "TCP"}]


@pytest.mark.parametrize("endpoint", [ScrapeEndpoint("p", 9464, "http", False),
                                      ScrapeEndpoint("p", 9464, "https", True)])
def test_probes_ask_the_health_endpoint_whatever_prometheus_wants(endpoint):
    """The kubelet has no password nor client certificate: the probes never
    go to /metrics, and /metrics stays where the profile puts it."""
    from ig_metrics.deploy.podprofiles import PodProfiles
    profiles = PodProfiles(files={}, profile=None, scrape=[endpoint])
    [container] = daemon_set(DeployOptions("tcp", "local"), profiles)["spec"]["template"][
        "spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == probe("/readyz")["httpGet"] == {
        "path": "/readyz", "port": "health", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    command = container["command"]
    assert command[command.index("--health-listen") + 1] == f"0.0.0.0:{HEALTH_PORT}"


def test_a_prometheus_port_on_the_health_port_is_refused(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", f"""\
exporters:
  scrape:
    type: prometheus
    listen: 127.0.0.1:{HEALTH_PORT}
profiles:
  mine:
    exporters: [scrape]
""")
    result = deploy("--gadget", "tcp", "--profile", "mine", "--profiles-dir", str(profiles))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"port {HEALTH_PORT}, the pods' health endpoint" in result.stderr


def test_least_privilege():
    manifests = manifests_of("--gadget", "tcp", "--profile", "otlp-prod", "--env", OTLP_ENV)
    spec = pod_spec(manifests)
    [container] = spec["containers"]
    security = container["securityContext"]
    assert "privileged: true" not in yaml.safe_dump_all(manifests.values())
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON", "SYS_RESOURCE"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["hostPID"] is True and not spec.get("hostNetwork")
    host_volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_volumes == {"tracefs": "/sys/kernel/tracing", "cgroup": "/sys/fs/cgroup",
                            "modules": "/lib/modules", "usr-src": "/usr/src"}
    for mount in container["volumeMounts"]:
        if mount["name"] in host_volumes:
            assert mount["readOnly"] is True, mount
            assert mount.get("mountPropagation", "None") in ("None", "HostToContainer")
    assert manifests["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = manifests["ClusterRoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ig-metrics",
                                    "namespace": "ig-metrics"}]
    assert spec["serviceAccountName"] == "ig-metrics"
    assert manifests["Namespace"]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "privileged"


def test_sys_admin_only_when_asked_and_without_the_contradiction_the_api_refuses():
    [container] = pod_spec(manifests_of("--gadget", "tcp", "--sys-admin"))["containers"]
    security = container["securityContext"]
    assert security["capabilities"]["add"] == ["BPF", "PERFMON", "SYS_RESOURCE", "SYS_ADMIN"]
    assert "allowPrivilegeEscalation" not in security and security["privileged"] is False


def test_every_node_every_taint_and_the_node_name():
    manifests = manifests_of("--gadget", "tcp")
    spec = pod_spec(manifests)
    assert spec["tolerations"] == [{"operator": "Exists"}]
    [container] = spec["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_changed_profiles_change_the_pod_template(tmp_path):
    first = manifests_of("--gadget", "tcp", "--profile", "local")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, text in first["ConfigMap"]["data"].items():
        (profiles / name).write_text(text.replace("interval: 10s", "interval: 20s", 1))
    second = manifests_of("--gadget", "tcp", "--profile", "local", "--profiles-dir", str(profiles))
    key = "ig-metrics/profiles-sha256"
    assert (first["DaemonSet"]["spec"]["template"]["metadata"]["annotations"][key]
            != second["DaemonSet"]["spec"]["template"]["metadata"]["annotations"][key])


def test_an_invalid_profile_is_reported_by_file_and_line_and_nothing_is_printed(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", """\
exporters:
  scrape:
    type: prometheus
    listen: 127.0.0.1:99999
profiles:
  mine:
    exporters: [scrape]
""")
    result = deploy("--gadget", "tcp", "--profile", "mine", "--profiles-dir", str(profiles))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{profiles / 'profiles.yaml'}:4:" in result.stderr


@pytest.mark.parametrize("args, message", [
    (("--gadget", "tcp", "--profile", "nope"), "unknown profile 'nope'"),
    (("--gadget", "tpc"), "did you mean 'tcp'"),
    (("--gadget", "tcp", "--namespace", "Bad_Name"), "not a valid namespace name"),
    (("--gadget", "tcp", "--env", "NOEQUALS"), "is not NAME=VALUE"),
    (("--gadget", "tcp", "--env", "NODE_NAME=x"), "set by the DaemonSet itself"),
    (("--gadget", "tcp", "--apply"), "--apply needs --image"),
    (("--gadget", "tcp", "--kube-version", "1.24"), "older than 1.25"),
    (("--gadget", "tcp", "--kube-version", "latest"), "is not MAJOR.MINOR"),
    (("--gadget", "tcp", "--seccomp", "unconfined"), "is not one of runtime-default, localhost"),
    (("--gadget", "tcp", "--cgroup2-path", "sys/fs/cgroup"), "is not an absolute path"),
])
def test_bad_input_exits_2_with_nothing_printed(args, message):
    result = deploy(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in result.stderr


def test_profiles_are_checked_with_the_pods_environment(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", """\
exporters:
  central:
    type: otlp-grpc
    endpoint: ${env:COLLECTOR}
    insecure: true
profiles:
  push:
    exporters: [central]
""")
    args = ("--gadget", "tcp", "--profile", "push", "--profiles-dir", str(profiles))
    # Set here, but the pod would not have it.
    missing = deploy(*args, env={"COLLECTOR": "collector.example:4317"})
    assert missing.exit_code == 2 and missing.stdout == ""
    assert f"{profiles / 'profiles.yaml'}:4:" in missing.stderr and "COLLECTOR" in missing.stderr
    given = deploy(*args, "--env", "COLLECTOR=collector.observability.svc:4317")
    assert given.exit_code == 0, given.output
    daemon_set = [d for d in yaml.safe_load_all(given.stdout) if d["kind"] == "DaemonSet"][0]
    env = daemon_set["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "COLLECTOR", "value": "collector.observability.svc:4317"} in env


def test_a_loopback_collector_is_pointed_out():
    result = deploy("--gadget", "tcp", "--profile", "otlp-prod")
    assert result.exit_code == 0
    assert "sends to localhost, which in the pod is the pod itself" in result.stderr


IMAGE = "registry.example/ig-metrics:0.1.0"


def test_apply_without_kubectl_fails_clearly(tmp_path):
    result = deploy("--gadget", "tcp", "--apply", "--image", IMAGE, env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "needs kubectl, which is not on PATH" in result.stderr


def test_apply_hands_the_manifests_to_kubectl(tmp_path):
    printed = deploy("--gadget", "tcp", "--image", IMAGE).stdout
    record = tmp_path / "kubectl-input"
    kubectl = tmp_path / "kubectl"
    # Stands in for kubectl: records its arguments and standard input.
    kubectl.write_text(f'#!/bin/sh\necho "$@" > {record}.args\ncat > {record}\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    result = deploy("--gadget", "tcp", "--apply", "--image", IMAGE,
                    env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kubectl-input.args").read_text().split() == ["apply", "-f", "-"]
    assert record.read_text() == printed


@pytest.mark.parametrize("text, expected", [
    # A listen written: the value is replaced, its line's comment kept.
    ("exporters:\n  p:\n    type: prometheus\n    listen: 127.0.0.1:9464  # mine\n",
     'exporters:\n  p:\n    type: prometheus\n    listen: "0.0.0.0:9464"   # why  # mine\n'),
    # None written (the default is loopback): a line of its own.
    ("exporters:\n  # the scrape endpoint\n  p:\n    type: prometheus\n",
     'exporters:\n  # the scrape endpoint\n  p:\n    listen: "0.0.0.0:9464"   # why\n'
     '    type: prometheus\n'),
    ("exporters:\n  p: {type: prometheus}\n",
     'exporters:\n  p: {listen: "0.0.0.0:9464", type: prometheus}\n'),
    ("exporters:\n  p: {type: prometheus, listen: '127.0.0.1:9464'}\n",
     'exporters:\n  p: {type: prometheus, listen: "0.0.0.0:9464"}\n'),
])
def test_set_listen_changes_only_the_listen_address(text, expected, tmp_path):
    rewritten = set_listen(text, "p", "0.0.0.0:9464", note="why")
    assert rewritten == expected
    (tmp_path / "p.yaml").write_text(rewritten + "profiles:\n  x:\n    exporters: [p]\n")
    catalog = load_catalog([tmp_path], environ={})
    assert not catalog.errors
    assert catalog.exporters["p"].settings.listen == "0.0.0.0:9464"


def test_the_pod_environment_is_what_the_daemonset_sets():
    options = DeployOptions("tcp", "local", env=(("A", "1"),))
    environment = pod_environment(options)
    assert environment["A"] == "1" and environment["NODE_NAME"]
    assert "HOME" not in environment          # nothing leaks from this shell


def test_the_readme_command_deploys():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Run on Kubernetes"):]
    lines = iter(section.splitlines())
    command = next(line for line in lines if line.startswith("ig-metrics deploy"))
    while command.endswith("\\"):
        command = command[:-1] + next(lines)
    args = command.split()[2:]
    assert "--apply" in args
    result = deploy(*[arg for arg in args if arg != "--apply"])
    assert result.exit_code == 0, result.output
    assert "is the pod itself" not in result.stderr     # the collector is named


def test_two_prometheus_endpoints_that_would_collide_in_the_pod_are_refused(tmp_path):
    profiles = write_profiles(tmp_path / "profiles", """\
exporters:
  inside:
    type: prometheus
    listen: 127.0.0.1:9464
  outside:
    type: prometheus
    listen: 127.0.0.2:9464
profiles:
  both:
    exporters: [inside, outside]
""")
    result = deploy("--gadget", "tcp", "--profile", "both", "--profiles-dir", str(profiles))
    assert result.exit_code == 2 and result.stdout == ""
    assert "listening on 0.0.0.0, as a pod must" in result.stderr


def test_hook_kinds_add_what_they_need():
    assert pod_needs(["tracepoint", "raw_tracepoint"]) == PodNeeds()
    needs = pod_needs(["tracepoint", "socket_filter", "socket_filter"])
    assert needs.capabilities == ("NET_RAW",) and needs.host_network
    assert pod_needs(["kprobe", "kretprobe"]) == PodNeeds()     # CAP_PERFMON does
    with pytest.raises(UnknownHookKind, match="'uprobe' hook"):
        pod_needs(["uprobe"])


def test_every_hook_kind_has_its_pod_needs_written_down():
    assert set(HOOK_KINDS) <= set(HOOK_KIND_NEEDS)


@pytest.mark.parametrize("gadget", builtin_names())
def test_every_built_in_gadget_deploys_with_what_its_hooks_need(gadget):
    needs = pod_needs(hook.kind for hook in resolve(gadget).hooks)
    result = deploy("--gadget", gadget, "--profile", "local")
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
    spec = documents[-1]["spec"]["template"]["spec"]
    capabilities = spec["containers"][0]["securityContext"]["capabilities"]["add"]
    assert capabilities == ["BPF", "PERFMON", "SYS_RESOURCE", *needs.capabilities]
    assert spec.get("hostNetwork", False) is needs.host_network
    if needs.host_network:
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_several_gadgets_run_in_one_pod_per_node():
    """One DaemonSet, one container, the gadgets as `run --gadget` takes them;
    the packet gadget (dns) brings its capability and the node's network."""
    manifests = manifests_of("--gadget", "tcp,dns", "-g", "exec")
    assert manifests["DaemonSet"]["metadata"]["name"] == "ig-metrics-tcp-dns-exec"
    [container] = pod_spec(manifests)["containers"]
    command = container["command"]
    assert command[command.index("--gadget") + 1] == "tcp,dns,exec"
    assert "NET_RAW" in container["securityContext"]["capabilities"]["add"]
    assert pod_spec(manifests)["hostNetwork"] is True


def test_deploy_refuses_an_unknown_gadget_among_several():
    result = deploy("--gadget", "tcp,dsn")
    assert result.exit_code == 2
    assert "unknown gadget 'dsn'; did you mean 'dns'?" in result.output
