"""THIS STANDS IN FOR THE KUBELETS (and the DaemonSet controller) of a cluster;
there is no cluster here. Attached to the stand-in API server
(tests/k8s_apiserver.py), it RUNS the DaemonSets it is given: for each fake
node the DaemonSet selects (nodeSelector, node affinity on metadata.name) it
makes a pod object and starts a real process from the pod's container: the
container's command with the ConfigMap volume written to a directory
(`--profiles-dir` pointed at it), the downward-API and literal environment
(NODE_NAME), in the node's own network namespace. It serves the pod's status
as a kubelet reports it (Pending with ContainerCreating, Running, ready once
the readiness probe's HTTP GET answers 200, terminated with its exit code,
CrashLoopBackOff and restartCount after the process exits, ErrImagePull and
ImagePullBackOff for a node told that its image pull fails), the container's
log (pods/log, `previous` for the container before a restart) and the
pods/proxy subresource, forwarded to the pod's port on the node's address.
Deleting the DaemonSet stops every process (SIGTERM, as the kubelet does) and
then removes the pod, as the garbage collector does.

What differs from a kubelet, and why: no image is pulled, the command runs
from this checkout's ig-metrics; the nodes share one kernel, so each node's
process gets `--cgroup NODE_CGROUP` appended, to count only that node's
processes as a real node's kernel would; an exec readiness probe is not run
(the pod is ready once running)."""

from __future__ import annotations

import copy
import os
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.k8s_apiserver import CREATED, FakeApiServer, schema_problem

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
RESTART_BACKOFF = (1.0, 2.0, 4.0)      # a kubelet's is 10 s doubling to 5 min: shortened
PROBE_PERIOD = 0.3
PULL_SECONDS = 1.0                     # ContainerCreating (pulling the image) this long
# Not inherited by the node processes: each node's environment is its pod's.
HOST_ONLY_ENVIRONMENT = ("NODE_NAME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST",
                         "KUBERNETES_SERVICE_PORT")


@dataclass
class FakeNode:
    name: str
    address: str                        # where its pods' ports are reached
    prefix: list[str] = field(default_factory=list)     # enters the node (nsenter ...)
    cgroup: Path | None = None          # appended as --cgroup (the shared kernel)
    labels: dict[str, str] = field(default_factory=dict)
    image_pull_fails: bool = False      # the node's registry says the image is not there
    wrapper: list[str] = field(default_factory=list)   # e.g. setpriv dropping CAP_BPF


class Kubelet:
    def __init__(self, api: FakeApiServer, nodes: list[FakeNode], workdir: Path) -> None:
        self.api = api
        self.nodes = {node.name: node for node in nodes}
        self.workdir = workdir
        self.pods: dict[str, _PodRunner] = {}        # pod uid -> its runner
        self.invalid: list[str] = []                 # pods this stand-in made that were invalid
        api.kubelet = self

    # --- what the API server tells it --------------------------------------------------
    def daemon_set_created(self, daemon_set: dict) -> None:
        template = daemon_set["spec"]["template"]
        for node in self.nodes.values():
            if not _schedulable(template["spec"], node):
                continue
            pod = self._pod_for(daemon_set, node)
            problem = schema_problem(pod)
            if problem:
                self.invalid.append(problem)
            runner = _PodRunner(self, pod, node, daemon_set)
            self.pods[pod["metadata"]["uid"]] = runner
            self.api.add(pod)
            runner.start()

    def daemon_set_deleted(self, daemon_set: dict) -> None:
        uid = daemon_set["metadata"]["uid"]
        for runner in list(self.pods.values()):
            if runner.owner_uid == uid:
                runner.terminate()

    def log(self, pod: dict, previous: bool, tail: int) -> tuple[int, bytes]:
        runner = self.pods.get(pod["metadata"]["uid"])
        if runner is None:
            return 404, b"no such pod"
        return runner.log(previous, tail)

    def proxy(self, pod: dict, scheme: str, port: int, path: str) -> tuple[int, bytes, str]:
        runner = self.pods.get(pod["metadata"]["uid"])
        if runner is None or runner.process is None or runner.process.poll() is not None:
            return 503, b"error trying to reach service: no running container", "text/plain"
        url = f"{scheme}://{runner.node.address}:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), "text/plain"
        except OSError as error:
            return 503, f"error trying to reach service: {error}".encode(), "text/plain"

    def stop(self) -> None:
        """Whatever a test left running (a failed test): stopped."""
        for runner in list(self.pods.values()):
            runner.terminate()
        for runner in list(self.pods.values()):
            runner.thread.join(timeout=40)

    def processes(self) -> list[subprocess.Popen]:
        """Every node process started, running or not."""
        return [process for runner in self.pods.values() for process in runner.started]

    def _pod_for(self, daemon_set: dict, node: FakeNode) -> dict:
        template = copy.deepcopy(daemon_set["spec"]["template"])
        name = f"{daemon_set['metadata']['name']}-{secrets.token_hex(3)[:5]}"
        metadata = {**template.get("metadata", {}), "name": name,
                    "namespace": daemon_set["metadata"]["namespace"],
                    "uid": str(uuid.uuid4()), "creationTimestamp": CREATED,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                         "name": daemon_set["metadata"]["name"],
                                         "uid": daemon_set["metadata"]["uid"],
                                         "controller": True, "blockOwnerDeletion": True}]}
        spec = {**template["spec"], "nodeName": node.name}
        container = spec["containers"][0]["name"]
        status = {"phase": "Pending", "hostIP": node.address, "podIP": node.address,
                  "containerStatuses": [{
                      "name": container, "image": spec["containers"][0]["image"],
                      "imageID": "", "ready": False, "restartCount": 0, "started": False,
                      "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
                "status": status}


def _schedulable(spec: dict, node: FakeNode) -> bool:
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": node.name, **node.labels}
    if any(labels.get(key) != value for key, value in spec.get("nodeSelector", {}).items()):
        return False
    affinity = spec.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if not affinity:
        return True
    for term in affinity["nodeSelectorTerms"]:
        fields = term.get("matchFields", [])
        if all(entry["key"] == "metadata.name" and entry["operator"] == "In"
               and node.name in entry["values"] for entry in fields):
            return True
    return False


class _PodRunner:
    """One pod on one node: its container's process, restarted when it exits."""

    def __init__(self, kubelet: Kubelet, pod: dict, node: FakeNode, daemon_set: dict) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.node = node
        self.owner_uid = daemon_set["metadata"]["uid"]
        self.directory = kubelet.workdir / pod["metadata"]["name"]
        self.process: subprocess.Popen | None = None
        self.started: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.deleting = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def terminate(self) -> None:
        self.deleting.set()

    # --- status -----------------------------------------------------------------------
    def _update(self, *, phase: str, state: dict, ready: bool = False,
                last: dict | None = None, restarts: int | None = None) -> None:
        pod = copy.deepcopy(self.pod)
        status = pod["status"]
        status["phase"] = phase
        entry = status["containerStatuses"][0]
        entry.update({"state": state, "ready": ready, "started": "running" in state})
        if last is not None:
            entry["lastState"] = last
        if restarts is not None:
            entry["restartCount"] = restarts
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        if self.deleting.is_set():
            pod["metadata"]["deletionTimestamp"] = CREATED
        problem = schema_problem(pod)
        if problem:
            self.kubelet.invalid.append(problem)
        self.pod = pod
        self.kubelet.api.modify(pod)

    def _run(self) -> None:
        try:
            if self.node.image_pull_fails:
                self._fail_pulls()
            else:
                self._run_container()
        finally:
            self._update(phase=self.pod["status"]["phase"],
                         state=self.pod["status"]["containerStatuses"][0]["state"])
            self.kubelet.api.delete(self.pod)

    def _fail_pulls(self) -> None:
        image = self.pod["spec"]["containers"][0]["image"]
        self.deleting.wait(PULL_SECONDS)
        self._update(phase="Pending", state={"waiting": {
            "reason": "ErrImagePull",
            "message": f'rpc error: code = NotFound desc = failed to pull and unpack image '
                       f'"{image}": not found'}})
        if not self.deleting.wait(1.0):
            self._update(phase="Pending", state={"waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{image}"'}})
        self.deleting.wait()

    def _run_container(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv, environment = self._command()
        if self.deleting.wait(PULL_SECONDS):
            return
        restarts = 0
        while not self.deleting.is_set():
            log = self.directory / f"container-{restarts}.log"
            self.logs.append(log)
            with open(log, "wb") as output:
                self.process = subprocess.Popen(
                    [*self.node.prefix, *self.node.wrapper, *argv], stdout=output,
                    stderr=subprocess.STDOUT, env=environment, start_new_session=True)
            self.started.append(self.process)
            self._update(phase="Running", state={"running": {"startedAt": CREATED}},
                         restarts=restarts)
            self._probe_until_exit()
            if self.deleting.is_set():
                self._stop_process()
                return
            code = self.process.returncode
            terminated = {"exitCode": code, "reason": "Error" if code else "Completed",
                          "startedAt": CREATED, "finishedAt": CREATED}
            restarts += 1
            backoff = RESTART_BACKOFF[min(restarts, len(RESTART_BACKOFF)) - 1]
            container = self.pod["spec"]["containers"][0]["name"]
            self._update(phase="Running", state={"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {backoff:g}s restarting failed container={container} "
                           f"pod={self.pod['metadata']['name']}"}},
                last={"terminated": terminated}, restarts=restarts)
            self.deleting.wait(backoff)

    def _probe_until_exit(self) -> None:
        probe = self.pod["spec"]["containers"][0].get("readinessProbe", {}).get("httpGet")
        ready = False
        while self.process.poll() is None and not self.deleting.is_set():
            now_ready = self._probe(probe) if probe else True
            if now_ready != ready:
                ready = now_ready
                self._update(phase="Running", state={"running": {"startedAt": CREATED}},
                             ready=ready)
            self.deleting.wait(PROBE_PERIOD)

    def _probe(self, probe: dict) -> bool:
        port = probe["port"]
        if isinstance(port, str):
            port = next(entry["containerPort"] for entry in
                        self.pod["spec"]["containers"][0].get("ports", [])
                        if entry["name"] == port)
        scheme = probe.get("scheme", "HTTP").lower()
        try:
            with urllib.request.urlopen(f"{scheme}://{self.node.address}:{port}"
                                        f"{probe.get('path', '/')}", timeout=2) as answer:
                return 200 <= answer.status < 400
        except OSError:
            return False

    def _stop_process(self) -> None:
        """SIGTERM, then SIGKILL after the pod's grace period, as a kubelet."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _command(self) -> tuple[list[str], dict[str, str]]:
        """The container's argv and environment, its volumes mapped to directories."""
        spec = self.pod["spec"]
        container = spec["containers"][0]
        mounts = {}
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                directory = self.directory / volume["name"]
                directory.mkdir(parents=True, exist_ok=True)
                config_map = self.kubelet.api.objects[
                    ("configmaps", self.pod["metadata"]["namespace"],
                     volume["configMap"]["name"])]
                for name, text in config_map.get("data", {}).items():
                    (directory / name).write_text(text)
                mounts[volume["name"]] = str(directory)
        paths = {mount["mountPath"]: mounts[mount["name"]]
                 for mount in container.get("volumeMounts", []) if mount["name"] in mounts}
        argv = [IG_METRICS if arg == "ig-metrics" else paths.get(arg, arg)
                for arg in [*container.get("command", []), *container.get("args", [])]]
        if self.node.cgroup is not None:
            argv += ["--cgroup", str(self.node.cgroup)]
        environment = {name: value for name, value in os.environ.items()
                       if name not in HOST_ONLY_ENVIRONMENT and not name.startswith("OTEL_")
                       and not name.lower().endswith("_proxy")}
        downward = {"spec.nodeName": self.node.name, "status.hostIP": self.node.address}
        for entry in container.get("env", []):
            if "value" in entry:
                environment[entry["name"]] = entry["value"]
            else:
                environment[entry["name"]] = downward[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        return argv, environment

    def log(self, previous: bool, tail: int) -> tuple[int, bytes]:
        """The current container's log, or with `previous` the last terminated one's."""
        running = self.process is not None and self.process.poll() is None
        terminated = self.logs[:-1] if running else self.logs
        logs = terminated if previous else self.logs
        if not logs:
            return 400, b"previous terminated container not found" if previous \
                else b"container is waiting to start"
        lines = logs[-1].read_bytes().splitlines(keepends=True)
        return 200, b"".join(lines[-tail:] if tail else lines)
