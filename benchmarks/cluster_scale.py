"""The cluster view at 10, 100 and 1,000 nodes, simulated (no cluster, no BPF):
what one refresh of `top --cluster` / `run --cluster` costs the CLI, and what
goes through the API server for it, side by side with the CLI before the node
summary (git revision ae7d6c1), which scraped every node's full Prometheus
exposition, one node after another.

What stands in for what:

  the API server   tests/k8s_apiserver.py's FakeApiServer (real HTTP, the
                   pods list and watch, pods/proxy forwarded to its kubelet;
                   here with TCP_NODELAY on its sockets, as a real one)
  the nodes        tests/cluster_farm.py's SummaryFarm as that kubelet: one
                   pod per node, each answering /summary with the real encoder
                   (counters change at every request), after a per-request
                   latency drawn uniformly from --latency (what a real API
                   server and kubelet add); for the old path, the same farm
                   also answers /metrics with the full exposition of a node
                   holding --series series (as the agent counts them: see
                   node_snapshot), rendered once by this checkout's
                   own Prometheus exporter (SnapshotCollector.text, classic
                   text, what the old CLI was served): two renderings of
                   consecutive readings (every counter and histogram moved),
                   each node alternating between them, so that no answer is
                   the one its node gave before (the old CLI skipped parsing
                   an exposition that had not changed)

With --tls the stand-in API server serves HTTPS (a CA made for the run, named
in the kubeconfig), as a real one: the CLI then decrypts every answer.

The stand-in API server and its nodes run in a process of their own (started
with --serve), so that the CLI process measured does only the CLI's work. The
CLI side runs in another process (--measure), with this checkout's code
("new") or the old revision's exported by benchmarks/revision.py ("old"):
connect, one watch of the pods (new) and --warmup refreshes, then the
measured ones. One refresh is, as the CLI does it:

  new   ClusterWatch.read(budget) with a budget long enough for every node to
        answer (30 s: one refresh = all N nodes read afresh, checked), then
        the table drawn (ui/cluster.py's render: the merged top 20 and the
        totals, a line per node) to an off-screen 200-column terminal
  old   the old ClusterWatch.read() (a pods list, then each node's /metrics
        in turn, parsed by ExpositionReader), then its table drawn likewise

  new, paced  the same at the CLI's own pace (cluster/session.py): a
        refresh every second, waiting at most 0.8 s for its reads; a node
        that answers later is shown at a later refresh, its read going on
        meanwhile. CPU is then per one-second cycle, those reads included.

Per refresh: wall time and CPU time of the CLI process (time.process_time:
every thread), split into the read and the draw; requests and bytes through
the API server, counted by the stand-in server on its client sockets (HTTP
headers included, both directions); the CLI's memory (VmRSS after the
refresh, VmHWM at the end); the cyclic garbage collector's share of the CPU
(gc.callbacks). Medians over the measured refreshes. Then, at the largest
node count (unless --client-nodes is 0): every node read once, 32 in flight,
through the CLI's reader and through aiohttp, taking turns; and
--client-nodes nodes read one at a time: a read's CPU through the CLI's
reader with the nodes' latency and back to back (no latency), the
kubeconfig's token refresh hook alone (once per refresh), and a summary's
decoding.

The default run (6 to 7 minutes on a 2-core VM, most of it the old path at
100 nodes):

    .venv/bin/python benchmarks/cluster_scale.py

draws docs/cluster-scale.svg; --json FILE keeps the figures, --replot FILE
draws the plot again from them without measuring. The reader against the
thread-per-read one it replaced, side by side at 1,000 nodes:

    .venv/bin/python benchmarks/cluster_scale.py --nodes 1000 --old-nodes \
        --old-refreshes --old-warmups --paced-nodes --compare dd6f86d --plot ''

Quick check:

    .venv/bin/python benchmarks/cluster_scale.py --nodes 10 100 --old-nodes 10 \\
        --old-refreshes 1 --old-warmups 0 --paced-nodes --series 2000 \\
        --plot /tmp/cs.svg
"""

from __future__ import annotations

import argparse
import datetime
import gc
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revision import ROOT, environment, export, use_code

OLD_REVISION = "ae7d6c1"           # the last revision whose CLI scraped every node in turn
NAMESPACE = "ig-metrics"
LABELS = {"app.kubernetes.io/name": "ig-metrics", "app.kubernetes.io/component": "tcp"}
SELECTOR = ",".join(f"{key}={value}" for key, value in LABELS.items())
SUMMARY_PORT = 9465                # the agent's --health-listen (/summary)
METRICS_PORT = 9464                # its prometheus exporter (/metrics), as the old CLI read
TOP, SORT = 20, "tcp.sent"
BUDGET = 30.0                      # seconds a new-path refresh may wait: all nodes answer
HOST_MARK = b"@@NODE@@"            # where each node's name goes in its exposition
DEFAULT_PLOT = ROOT / "docs" / "cluster-scale.svg"
READ_INTERVAL, READ_BUDGET = 1.0, 0.8    # the CLI's own (cluster/session.py)
TARGETS = {"nodes": 1000, "wall": 2.0, "cpu": 0.5, "megabytes": 10.0}


# --- the stand-in cluster (--serve) ------------------------------------------------------
def node_snapshot(series: int, seq: int):
    """What a busy node's tcp gadget holds at reading `seq`: `series` series as
    the agent counts them (one per metric and attribute set, a histogram being
    one), on 2/5 * series flows (process, peer, port, direction): tcp.sent and
    tcp.received of every flow, tcp.connections.opened of a quarter of them,
    tcp.connections.closed and the tcp.connect.duration histogram (27 bounds,
    three slots used) of an eighth (outbound ones); with the exporters' own
    metrics, as every exposition carries them."""
    try:
        from ig_metrics.exporters.delivery.telemetry import (
            ExporterStats,
            ExportTelemetry,
        )
    except ImportError:          # exporters/ before its packages
        from ig_metrics.exporters.telemetry import ExporterStats, ExportTelemetry
    from ig_metrics.gadgets import resolve
    from ig_metrics.model.snapshot import (
        HISTOGRAM,
        HistogramValue,
        MetricData,
        MetricInfo,
        Point,
        Snapshot,
    )

    spec = resolve("tcp")
    infos = {metric.name: MetricInfo(metric.name, metric.kind, metric.unit, metric.description,
                                     tuple(metric.bounds) if metric.kind == HISTOGRAM else ())
             for metric in spec.metrics}
    flows = series * 2 // 5
    mix = {"tcp.sent": flows, "tcp.received": flows, "tcp.connections.opened": series // 10,
           "tcp.connections.closed": series // 20}
    mix["tcp.connect.duration"] = series - sum(mix.values())

    def attributes(flow: int) -> tuple:
        outbound = flow % 2 == 1
        return (("process.pid", 1000 + flow // 8), ("process.command", f"worker-{flow // 8 % 97}"),
                ("network.peer.address", f"10.{flow >> 16 & 255}.{flow >> 8 & 255}.{flow & 255}"),
                ("server.port", 443 if outbound else 8080), ("network.type", "ipv4"),
                ("tcp.connection.direction", "outbound" if outbound else "inbound"))

    start_ns = 1_700_000_000_000_000_000
    metrics = []
    for name, count in mix.items():
        info = infos[name]
        if info.kind == HISTOGRAM:
            slots = len(info.bounds) + 1
            points = tuple(Point(attributes(2 * index + 1), HistogramValue(
                tuple(seq * (index % 5 + 1) if slot in (8, 9, 10) else 0 for slot in range(slots)),
                seq * (index % 5 + 1) * 0.0015, 3 * seq * (index % 5 + 1)), start_ns)
                for index in range(count))
        else:
            scale = {"tcp.sent": 1500, "tcp.received": 700}.get(name, 1)
            points = tuple(Point(attributes(index), scale * (index % 1000 + 1) * seq, start_ns)
                           for index in range(count))
        metrics.append(MetricData(info, points))
    stats = ExporterStats("prom", "prometheus")
    stats.health, stats.interval = "healthy", 10.0
    telemetry = ExportTelemetry(start_ns)
    telemetry.add(stats)
    metrics += telemetry.metrics(start_ns + seq * 10_000_000_000)
    resource = (("service.name", "ig-metrics"), ("host.name", HOST_MARK.decode()),
                ("ig_metrics.gadget", "tcp"))
    return Snapshot(seq, start_ns + seq * 10_000_000_000, "tcp", resource, tuple(metrics))


def exposition(series: int, seq: int) -> tuple[bytes, bytes]:
    """The classic text the agent's prometheus exporter serves for
    node_snapshot(series, seq), split where the node's name goes."""
    try:
        from ig_metrics.exporters.prometheus.exporter import SnapshotCollector
        from ig_metrics.exporters.prometheus.text import TextFormat
    except ImportError:          # exporters/ before its packages
        from ig_metrics.exporters.prometheus import SnapshotCollector
        from ig_metrics.exporters.prometheus_text import TextFormat

    collector = SnapshotCollector()
    collector.show(node_snapshot(series, seq))
    text = b"".join(collector.text(TextFormat(False)))
    head, mark, tail = text.partition(HOST_MARK)
    assert mark, "the node's name is not in its exposition"
    return head, tail


class WireStats:
    """Requests and bytes the stand-in API server handles, on its client sockets."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def add(self, name: str, amount: int) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)


class _Counted:
    """A handler's rfile or wfile, its bytes counted."""

    def __init__(self, stream, stats: WireStats, name: str) -> None:
        self._stream, self._stats, self._name = stream, stats, name

    def write(self, data) -> int:
        self._stats.add(self._name, len(data))
        return self._stream.write(data)

    def read(self, *args):
        data = self._stream.read(*args)
        self._stats.add(self._name, len(data))
        return data

    def readline(self, *args):
        data = self._stream.readline(*args)
        self._stats.add(self._name, len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)


def count_wire(api, stats: WireStats) -> None:
    handler = api.http.RequestHandlerClass

    class Counting(handler):
        def setup(self) -> None:
            super().setup()
            self.rfile = _Counted(self.rfile, stats, "bytes_in")
            self.wfile = _Counted(self.wfile, stats, "bytes_out")

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            if parsed:
                stats.add("requests", 1)
            return parsed

    api.http.RequestHandlerClass = Counting


def scrape_farm(base):
    """SummaryFarm whose nodes also serve /metrics: their full exposition."""

    class ScrapeFarm(base):
        def __init__(self, api, nodes: int, *, bodies: list[tuple[bytes, bytes]],
                     **options) -> None:
            super().__init__(api, nodes, **options)
            self.bodies = bodies
            self._turns = dict.fromkeys(self.names, 0)
            self._scrape_lock = threading.Lock()
            self._scrape_random = random.Random(2)

        def proxy(self, pod: dict, scheme: str, port: int, path: str):
            if not path.startswith("/metrics"):
                return super().proxy(pod, scheme, port, path)
            node = pod["spec"]["nodeName"]
            with self._scrape_lock:
                self.requests += 1
                delay = self._scrape_random.uniform(*self.latency)
                turn = self._turns[node]
                self._turns[node] = (turn + 1) % len(self.bodies)
            time.sleep(delay)
            head, tail = self.bodies[turn]
            return 200, head + node.encode() + tail, "text/plain; version=0.0.4; charset=utf-8"

    return ScrapeFarm


def serve(args) -> None:
    """The stand-in API server and its nodes, until stdin closes. Says
    {kubeconfig, control} on stdout once ready; GET control -> the counts."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.cluster_farm import SummaryFarm
    from tests.k8s_apiserver import FakeApiServer, write_kubeconfig
    from tests.receivers import make_tls_files

    bodies = [exposition(args.series, seq) for seq in (1, 2)] if args.serve == "metrics" else []
    directory = Path(tempfile.mkdtemp(prefix="cluster-scale-"))
    tls = make_tls_files(directory / "tls", "apiserver") if args.tls else None
    stats = WireStats()
    with FakeApiServer(tls=(tls.server_cert, tls.server_key) if tls else None) as api:
        api.existing_namespaces.add(NAMESPACE)
        count_wire(api, stats)
        options = {"namespace": NAMESPACE, "labels": LABELS, "series": args.series,
                   "latency": tuple(args.latency)}
        farm = scrape_farm(SummaryFarm)(api, args.nodes, bodies=bodies, **options) \
            if bodies else SummaryFarm(api, args.nodes, **options)
        kubeconfig = write_kubeconfig(directory / "kubeconfig", api,
                                      ca_file=tls.ca if tls else None)

        class Control(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/latency?"):
                    # Set the nodes' latency; answers the one it replaces.
                    asked = dict(pair.split("=") for pair in self.path[9:].split("&"))
                    body = json.dumps({"latency": list(farm.latency)}).encode()
                    farm.latency = (float(asked["low"]), float(asked["high"]))
                    return self._answer(body)
                with stats.lock:
                    counts = {"requests": stats.requests, "bytes_in": stats.bytes_in,
                              "bytes_out": stats.bytes_out}
                counts.update(proxied=len(api.proxied), farm_requests=farm.requests,
                              pod_lists_watches=len(api.requests),
                              cpu=time.process_time())
                self._answer(json.dumps(counts).encode())

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        print(json.dumps({"kubeconfig": str(kubeconfig),
                          "control": f"http://127.0.0.1:{control.server_address[1]}/",
                          "exposition_bytes": [len(head) + len(tail) + len("node-0000")
                                               for head, tail in bodies]}), flush=True)
        sys.stdin.read()
        control.shutdown()


# --- the CLI side (--measure) ------------------------------------------------------------
def proc_status(field: str) -> int:
    """A VmRSS/VmHWM-like line of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def counts(control: str) -> dict:
    with urllib.request.urlopen(control, timeout=30) as answer:
        return json.loads(answer.read())


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def measure(args) -> dict:
    use_code()
    from rich.console import Console

    from ig_metrics.gadgets import resolve

    baseline = proc_status("VmRSS")
    spec = resolve("tcp")
    console = Console(file=_Discard(), width=200, height=60, force_terminal=True,
                      color_system="truecolor")
    title = "ig-metrics · tcp · DaemonSet ig-metrics-tcp · test"
    kubeconfig = Path(args.kubeconfig)
    if args.measure == "new":
        from ig_metrics.cluster.api import connect
        from ig_metrics.cluster.watch import ClusterWatch
        from ig_metrics.ui.cluster import frame

        cluster = connect(kubeconfig)
        watch = ClusterWatch(cluster, NAMESPACE, SELECTOR, SUMMARY_PORT, sort=SORT, top=TOP)
        watch.__enter__()

        def read():
            return watch.read(args.budget)

        def draw(reading) -> None:
            # What the live view draws on a terminal of the console's height.
            console.print(frame([spec], reading, title=title, top=TOP, sorts=[SORT],
                                height=console.size.height))

        def stamps(reading) -> dict:
            return {node.node: node.summary.time_ns for node in reading.ready()}

        try:
            from ig_metrics.cluster.session import settle_memory as settle
        except ImportError:          # a revision from before it
            settle = None
    else:
        settle = None
        from ig_metrics.k8s.cluster import connect
        from ig_metrics.k8s.clusterwatch import ClusterWatch
        from ig_metrics.k8s.podprofiles import ScrapeEndpoint
        from ig_metrics.ui.cluster import render

        cluster = connect(kubeconfig)
        watch = ClusterWatch(cluster, NAMESPACE, SELECTOR, spec,
                             ScrapeEndpoint("prom", METRICS_PORT, "http", False))
        read = watch.read

        def draw(reading) -> None:
            console.print(render(spec, reading, title=title, top=TOP, sort=SORT))

        def stamps(reading) -> dict:
            return {node.node: id(node.metrics) for node in reading.ready()}

    connected = proc_status("VmRSS")
    collected = {"cpu": 0.0, "full": 0, "began": 0.0}

    def collecting(phase: str, info: dict) -> None:
        # The cyclic garbage collector's share (it holds the GIL: the
        # process' CPU meanwhile is its own).
        if phase == "start":
            collected["began"] = time.process_time()
        else:
            collected["cpu"] += time.process_time() - collected["began"]
            collected["full"] += info["generation"] == 2

    gc.callbacks.append(collecting)
    refreshes, last, client = [], {}, {}
    try:
        for index in range(args.warmup + args.refreshes):
            before = counts(args.control)
            gc_before, full_before = collected["cpu"], collected["full"]
            wall, cpu = time.perf_counter(), time.process_time()
            reading = read()
            read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
            draw(reading)
            total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
            gc_cpu, full = collected["cpu"] - gc_before, collected["full"] - full_before
            if args.interval:
                # As the CLI paces its refreshes: reads still in flight go on
                # meanwhile, and their CPU counts in the cycle's.
                time.sleep(max(0.0, args.interval - (time.perf_counter() - wall)))
            cycle_wall, cycle_cpu = time.perf_counter() - wall, time.process_time() - cpu
            after = counts(args.control)
            now = stamps(reading)
            if index == 0 and settle is not None:
                settle()           # as the CLI does once a first node is read
            refreshes.append({
                "warmup": index < args.warmup, "wall": total_wall, "cpu": total_cpu,
                "read_wall": read_wall, "read_cpu": read_cpu,
                "draw_cpu": total_cpu - read_cpu, "cycle_wall": cycle_wall,
                "cycle_cpu": cycle_cpu, "gc_cpu": gc_cpu, "full_collections": full,
                "requests": after["requests"] - before["requests"],
                "proxied": after["proxied"] - before["proxied"],
                "pod_lists_watches": after["pod_lists_watches"] - before["pod_lists_watches"],
                "bytes": (after["bytes_in"] - before["bytes_in"]
                          + after["bytes_out"] - before["bytes_out"]),
                "bytes_out": after["bytes_out"] - before["bytes_out"],
                "server_cpu": after["cpu"] - before["cpu"],
                "nodes": len(reading.nodes), "read": len(now),
                # Nodes whose reading is new at this refresh (all of them, or
                # the refresh did not read every node).
                "fresh": sum(1 for node, stamp in now.items() if last.get(node) != stamp),
                "rss": proc_status("VmRSS")})
            last = now
        if args.client_cost and args.measure == "new":
            client = library_cost(cluster, [node.pod.name for node in reading.nodes],
                                  watch.path)
            client |= client_cost(cluster, args.control,
                                 [node.pod.name for node in reading.nodes], watch.path,
                                 args.client_cost)
    finally:
        if args.measure == "new":
            watch.__exit__(None, None, None)
        cluster.close()
    return {"baseline_rss": baseline, "connected_rss": connected, "hwm": proc_status("VmHWM"),
            "refreshes": refreshes, "client": client}


def library_cost(cluster, pods: list[str], path: str, rounds: int = 5) -> dict:
    """CPU of reading every node once, 32 reads in flight, decoding included:
    through the CLI's reader, and through aiohttp (the Kubernetes client's
    asyncio half's HTTP client, one session of 32 kept connections), taking
    turns; medians over `rounds` each."""
    import asyncio

    import aiohttp

    from ig_metrics.cluster.api import MAX_IN_FLIGHT, pod_proxy_path
    from ig_metrics.cluster.apireader import ApiReader, route
    from ig_metrics.summary.node import decode

    paths = [pod_proxy_path(NAMESPACE, pod, SUMMARY_PORT, path) for pod in pods]
    server = cluster.client.configuration.host
    tls = route(cluster.client.configuration).tls

    async def through_aiohttp() -> None:
        # The kubeconfig's TLS (its CA), as the reader takes it.
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, ssl=tls or True)
        async with aiohttp.ClientSession(connector=connector,
                                         headers=cluster.auth_headers()) as session:
            async def one(target: str) -> None:
                async with session.get(server + target) as answer:
                    decode(await answer.read())

            await asyncio.gather(*(one(target) for target in paths))      # connections
            for _ in range(rounds):
                began = time.process_time()
                await asyncio.gather(*(one(target) for target in paths))
                cpu["aiohttp"].append(time.process_time() - began)

    async def through_reader(reader) -> None:
        async def one(target: str) -> None:
            decode(await reader.get(target, what="get pods/proxy", timeout=30))

        await asyncio.gather(*(one(target) for target in paths))
        for _ in range(rounds):
            began = time.process_time()
            await asyncio.gather(*(one(target) for target in paths))
            cpu["reader"].append(time.process_time() - began)

    cpu: dict[str, list[float]] = {"reader": [], "aiohttp": []}
    with ApiReader(cluster, MAX_IN_FLIGHT) as reader:
        reader.run(through_reader(reader))
    asyncio.run(through_aiohttp())
    return {"reads": len(paths), **{f"{name}_cpu": statistics.median(values)
                                    for name, values in cpu.items()},
            **{f"{name}_range": [min(values), max(values)] for name, values in cpu.items()}}


def client_cost(cluster, control: str, pods: list[str], path: str, count: int) -> dict:
    """CPU per node read, one read at a time (nothing else in flight): the
    request through the CLI's reader (cluster/apireader.py) with the stand-in's
    latency and with none (back to back), the kubeconfig loader's token
    refresh hook alone (the reader calls it once per refresh), and decoding a
    summary."""
    from ig_metrics.cluster.api import pod_proxy_path
    from ig_metrics.cluster.apireader import ApiReader
    from ig_metrics.summary.node import decode

    pods = pods[:count]

    def per_request(reader) -> tuple[float, list[bytes]]:
        async def read_all() -> list[bytes]:
            return [await reader.get(pod_proxy_path(NAMESPACE, pod, SUMMARY_PORT, path),
                                     what="get pods/proxy", timeout=30) for pod in pods]

        began = time.process_time()
        payloads = reader.run(read_all())
        return (time.process_time() - began) / len(pods), payloads

    with ApiReader(cluster, 1) as reader:
        request, payloads = per_request(reader)
        latency = counts(control + "latency?low=0&high=0")["latency"]
        try:
            back_to_back, _ = per_request(reader)
        finally:
            counts(control + "latency?low={}&high={}".format(*latency))
    configuration = cluster.client.configuration
    hook = configuration.refresh_api_key_hook
    calls = 2000
    began = time.process_time()
    for _ in range(calls if hook is not None else 0):
        hook(configuration)
    hook_cost = (time.process_time() - began) / calls
    began = time.process_time()
    for payload in payloads:
        decode(payload)
    return {"nodes": len(pods), "request": request, "back_to_back": back_to_back,
            "hook": hook_cost, "environment": len(os.environ),
            "decode": (time.process_time() - began) / len(pods),
            "summary_bytes": statistics.median(len(payload) for payload in payloads)}


# --- both, in turn -----------------------------------------------------------------------
def run(path: str, nodes: int, *, code: Path, series: int, latency: list[float],
        warmup: int, refreshes: int, budget: float, interval: float = 0.0,
        client: int = 0, tls: bool = False) -> dict:
    """One path at one node count: the stand-in in its process, the CLI in another."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "metrics" if path == "old" else "summary",
         "--nodes-served", str(nodes), "--series", str(series),
         "--latency", *map(str, latency), *(["--tls"] if tls else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment(ROOT),
        cwd=ROOT)
    try:
        ready = json.loads(server.stdout.readline())
        measured = subprocess.run(
            [sys.executable, __file__, "--measure", "old" if path == "old" else "new",
             "--kubeconfig", ready["kubeconfig"], "--control", ready["control"],
             "--warmup", str(warmup), "--refreshes", str(refreshes), "--budget", str(budget),
             "--interval", str(interval), "--client-cost", str(client)],
            env={**environment(code), "KUBECONFIG": ""}, cwd="/", check=True,
            capture_output=True, text=True, timeout=3600)
    finally:
        server.stdin.close()
        server.wait(60)
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    result.update(path=path, nodes=nodes, exposition_bytes=ready["exposition_bytes"],
                  budget=budget, interval=interval)
    result["median"] = summarize([entry for entry in result["refreshes"]
                                  if not entry["warmup"]])
    return result


def summarize(refreshes: list[dict]) -> dict:
    """Each figure's median; the read/draw split of the refresh of median CPU
    (medians of the parts would not add up)."""
    median = {key: statistics.median(entry[key] for entry in refreshes)
              for key in refreshes[0] if key != "warmup"}
    middle = sorted(refreshes, key=lambda entry: entry["cpu"])[(len(refreshes) - 1) // 2]
    median["split"] = [middle["cpu"], middle["read_cpu"], middle["draw_cpu"]]
    return median


def mib(value: float) -> str:
    return f"{value / 2**20:,.2f}" if value < 10 * 2**20 else f"{value / 2**20:,.0f}"


def megabytes(value: float) -> str:
    return f"{value / 1e6:,.3g}" if value < 1e9 else f"{value / 1e6:,.0f}"


def seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(data: dict) -> str:
    lines = [("| path | nodes | refreshes | nodes read afresh | wall s | CLI CPU s (read + draw) "
              "| of which GC s | requests (proxied) | MB through the API server "
              "| CLI VmRSS after / peak |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in data["runs"]:
        median = result["median"]
        count = sum(1 for entry in result["refreshes"] if not entry["warmup"])
        total, read, drawn = median.get("split") or (median["cpu"], median["read_cpu"],
                                                     median["draw_cpu"])
        cpu = f"{seconds(total)} ({seconds(read)} + {seconds(drawn)})"
        if result.get("interval"):
            cpu = f"{seconds(median['cycle_cpu'])} per {result['interval']:g} s cycle"
        lines.append(
            f"| {result['path']} | {result['nodes']:,} | {count} | {median['fresh']:,.0f} "
            f"| {seconds(median['wall'])} | {cpu} | {seconds(median.get('gc_cpu', 0))} "
            f"| {median['requests']:,.0f} ({median['proxied']:,.0f}) "
            f"| {megabytes(median['bytes'])} "
            f"| {mib(median['rss'])} / {mib(result['hwm'])} MiB |")
    for result in data["runs"]:
        client = result.get("client")
        if client and "back_to_back" in client:
            lines.append(
                f"\nOne node read at a time ({client['nodes']} of the {result['nodes']:,}, "
                f"nothing else in flight): {client['request'] * 1000:.3f} ms of CPU per request "
                f"through the CLI's reader, {client['back_to_back'] * 1000:.3f} ms back to back "
                f"(the nodes' latency set to 0); the kubeconfig's token refresh hook "
                f"{client['hook'] * 1000:.3f} ms, once per refresh ({client['environment']} "
                f"environment variables); decoding a summary of {client['summary_bytes']:,.0f} bytes "
                f"{client['decode'] * 1000:.3f} ms.")
        if client and "aiohttp_cpu" in client:
            lines.append(
                f"\nEvery node read once, {client['reads']:,} reads, 32 in flight, decoding "
                f"included: {client['reader_cpu']:.3f} s of CPU through the CLI's reader "
                "({:.3f}-{:.3f}), {:.3f} s through aiohttp ({:.3f}-{:.3f}); medians of "
                "5 rounds each.".format(*client["reader_range"], client["aiohttp_cpu"],
                                        *client["aiohttp_range"]))
    return "\n".join(lines)


# --- the plot ----------------------------------------------------------------------------
def plot(data: dict, output: Path) -> None:
    """Two log-log panels against nodes: seconds per refresh (wall, CLI CPU)
    and MiB through the API server per refresh; the targets at 1,000 nodes."""
    import math

    runs = {path: sorted((run for run in data["runs"] if run["path"] == path),
                         key=lambda run: run["nodes"]) for path in ("new", "old")}
    colours = {"new": "#1f77b4", "old": "#d62728"}
    names = {"new": "node summaries, read concurrently (this checkout)",
             "old": f"full scrapes, one node after another ({data['old_revision']})"}
    width, height = 1010, 470
    left, top, plot_w, plot_h, label_w = 60, 56, 330, 290, 130
    panels = [
        ("seconds per refresh", "", [("wall", ""), ("cpu", "6,4")],
         [(TARGETS["wall"], "target: wall ≤ 2 s"), (TARGETS["cpu"], "target: CPU ≤ 0.5 s")],
         1.0),
        ("MB through the API server per refresh", "", [("bytes", "")],
         [(TARGETS["megabytes"], "target: ≤ 10 MB")], 1e6),
    ]
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
           f'<rect width="{width}" height="{height}" fill="white"/>',
           (f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">One refresh of '
            f'the cluster view: simulated nodes of {data["series"]:,} series each, '
            f'{data["latency"][0] * 1000:g}–{data["latency"][1] * 1000:g} ms per proxied '
            f'request ({data["date"]})</text>')]
    for number, (label, _, series, targets, unit) in enumerate(panels):
        x0 = left + number * (plot_w + label_w + left)
        values = [run["median"][key] / unit for path in runs for run in runs[path]
                  for key, _ in series] + [value for value, _ in targets]
        low = 10 ** math.floor(math.log10(min(value for value in values if value > 0)))
        high = 10 ** (math.floor(math.log10(max(values) * 1.5)) + 1)

        def px(nodes: float, x0: float = x0) -> float:
            return x0 + plot_w * (math.log10(nodes) - 0.8) / (3.2 - 0.8)   # 10^0.8 .. 10^3.2

        def py(value: float, low: float = low, high: float = high) -> float:
            return top + plot_h * (1 - (math.log10(value) - math.log10(low)) / (
                math.log10(high) - math.log10(low)))

        out.append(f'<rect x="{x0}" y="{top}" width="{plot_w}" height="{plot_h}" '
                   'fill="none" stroke="#444"/>')
        decade = low
        while decade <= high * 1.0001:
            y = py(decade)
            out.append(f'<line x1="{x0}" x2="{x0 + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                       'stroke="#e4e4e4"/>')
            out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{decade:g}</text>')
            decade *= 10
        for nodes in (10, 100, 1000):
            x = px(nodes)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
                       'stroke="#e4e4e4"/>')
            out.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" '
                       f'text-anchor="middle">{nodes:,}</text>')
        out.append(f'<text x="{x0 + plot_w / 2}" y="{top + plot_h + 34}" '
                   'text-anchor="middle">nodes</text>')
        out.append(f'<text x="{x0 + plot_w / 2}" y="{top - 10}" text-anchor="middle" '
                   f'font-weight="bold">{label}</text>')
        for value, text in targets:
            x, y = px(TARGETS["nodes"]), py(value)
            out.append(f'<line x1="{x + 6:.1f}" x2="{x0 + plot_w:.1f}" y1="{y:.1f}" '
                       f'y2="{y:.1f}" stroke="#2ca02c" stroke-width="3"/>')
            out.append(f'<text x="{x0 + plot_w + 5}" y="{y + 4:.1f}" '
                       f'fill="#2ca02c">{text}</text>')
        for path, entries in runs.items():
            for key, dash in series:
                points = [(px(run["nodes"]), py(run["median"][key] / unit),
                           run["median"][key] / unit) for run in entries]
                if not points:
                    continue
                out.append('<polyline fill="none" stroke-width="2" stroke="{}"{} points="{}"/>'
                           .format(colours[path], f' stroke-dasharray="{dash}"' if dash else "",
                                   " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)))
                for x, y, value in points:
                    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
                               f'fill="{colours[path]}"/>')
                    shown = f"{value:.3g}" if value < 100 else f"{value:,.0f}"
                    # Left of the last column (the targets are on its right).
                    right = x < px(TARGETS["nodes"]) - 1
                    out.append(f'<text x="{x + (7 if right else -7):.1f}" '
                               f'y="{y + (12 if dash else -6):.1f}" '
                               f'text-anchor="{"start" if right else "end"}" '
                               f'font-size="10" fill="{colours[path]}" stroke="white" '
                               f'stroke-width="3" paint-order="stroke">{shown}</text>')
    legend = top + plot_h + 62
    for row, path in enumerate(("new", "old")):
        y = legend + row * 20
        x = left
        for what, dash in (("wall", ""), ("CLI CPU", "6,4")):
            out.append(f'<line x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}" '
                       f'stroke="{colours[path]}" stroke-width="2"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            out.append(f'<text x="{x + 36}" y="{y + 4}">{what}</text>')
            x += 110
        out.append(f'<text x="{x}" y="{y + 4}">{names[path]}</text>')
    out.append("</svg>")
    output.write_text("\n".join(out) + "\n")


# --- the command -------------------------------------------------------------------------
def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "")
    return f"{os.cpu_count()} CPUs ({model}), kernel {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--nodes", type=int, nargs="*", default=[10, 100, 1000],
                        help="node counts for the new path (default: 10 100 1000)")
    parser.add_argument("--old-nodes", type=int, nargs="*", default=[10, 100],
                        help="node counts for the old path (default: 10 100; none: no old "
                             "path)")
    parser.add_argument("--refreshes", type=int, default=5,
                        help="measured refreshes of the new path, after --warmup (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="refreshes of the new path before measuring (default 1: it "
                             "lists the pods and opens the connections)")
    parser.add_argument("--old-refreshes", type=int, nargs="*", default=[3, 1],
                        help="measured refreshes of the old path, one per --old-nodes entry "
                             "(default 3 1: a refresh at 100 nodes takes minutes)")
    parser.add_argument("--old-warmups", type=int, nargs="*", default=[1, 0],
                        help="old-path refreshes before measuring, one per --old-nodes entry "
                             "(default 1 0)")
    parser.add_argument("--series", type=int, default=20_000,
                        help="series per node (default 20000)")
    parser.add_argument("--latency", type=float, nargs=2, default=[0.005, 0.020],
                        metavar=("LOW", "HIGH"),
                        help="seconds the API server and kubelet add per proxied request, "
                             "uniform between LOW and HIGH (default 0.005 0.020)")
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help="seconds a new-path refresh waits for its nodes (default 30: "
                             "all of them; the CLI's own is 0.8)")
    parser.add_argument("--paced-nodes", type=int, nargs="*", default=[1000],
                        help="node counts for the new path also run at the CLI's own pace "
                             f"(a refresh every {READ_INTERVAL:g} s waiting at most "
                             f"{READ_BUDGET:g} s; default 1000; none: not run)")
    parser.add_argument("--paced-refreshes", type=int, default=10,
                        help="measured refreshes of a paced run, after 2 (default 10)")
    parser.add_argument("--client-nodes", type=int, default=300,
                        help="after the new path's run at its largest node count, read this "
                             "many nodes one at a time, to take a read's CPU apart (default "
                             "300; 0: not done)")
    parser.add_argument("--before", default=OLD_REVISION,
                        help=f"the revision of the old path (default {OLD_REVISION})")
    parser.add_argument("--compare", metavar="REV",
                        help="also run the new path at the largest node count with the CLI "
                             "of revision REV, side by side (e.g. dd6f86d: node reads from "
                             "a thread pool through the kubernetes client's urllib3 pool)")
    parser.add_argument("--tls", action="store_true",
                        help="the stand-in API server serves HTTPS (its own CA in the "
                             "kubeconfig), as a real one; default plain HTTP")
    parser.add_argument("--plot", default=str(DEFAULT_PLOT),
                        help="the SVG drawn (default docs/cluster-scale.svg; '' for none)")
    parser.add_argument("--json", type=Path, help="keep the figures in this file")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="draw --plot from a --json file, without measuring")
    # The two sides of one measurement, each in its own process.
    parser.add_argument("--serve", choices=("summary", "metrics"), help=argparse.SUPPRESS)
    parser.add_argument("--nodes-served", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("new", "old"), help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--client-cost", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        args.nodes = args.nodes_served
        return serve(args)
    if args.measure:
        print(json.dumps(measure(args)))
        return
    if args.replot:
        data = json.loads(args.replot.read_text())
        print(table(data))
        plot(data, Path(args.plot))
        return
    if not (len(args.old_nodes) == len(args.old_refreshes) == len(args.old_warmups)):
        parser.error("--old-refreshes and --old-warmups need one entry per --old-nodes entry")
    old = export(args.before) if args.old_nodes else None
    data = {"date": datetime.date.today().isoformat(), "machine": machine(),
            "command": " ".join(["python", *sys.argv]), "series": args.series,
            "latency": args.latency, "old_revision": args.before, "tls": args.tls,
            "runs": []}
    plan = [("new", nodes, args.warmup, args.refreshes) for nodes in args.nodes]
    plan += [("old", nodes, warmup, refreshes) for nodes, warmup, refreshes
             in zip(args.old_nodes, args.old_warmups, args.old_refreshes)]
    plan += [("new, paced", nodes, 2, args.paced_refreshes) for nodes in args.paced_nodes]
    codes = {"old": old, "new": ROOT, "new, paced": ROOT}
    if args.compare and args.nodes:
        codes[f"new ({args.compare})"] = export(args.compare)
        plan.append((f"new ({args.compare})", max(args.nodes), args.warmup, args.refreshes))
    for path, nodes, warmup, refreshes in sorted(plan, key=lambda entry: entry[1]):
        began = time.monotonic()
        paced = path == "new, paced"
        result = run(path, nodes, code=codes[path], series=args.series,
                     latency=args.latency, warmup=warmup, refreshes=refreshes,
                     budget=READ_BUDGET if paced else args.budget,
                     interval=READ_INTERVAL if paced else 0.0,
                     client=args.client_nodes if path == "new" and nodes == max(args.nodes)
                     else 0, tls=args.tls)
        data["runs"].append(result)
        median = result["median"]
        print(f"{path} {nodes:>5} nodes: wall {seconds(median['wall'])} s, CPU "
              f"{seconds(median['cpu'])} s, {median['requests']:.0f} requests, "
              f"{megabytes(median['bytes'])} MB, fresh {median['fresh']:.0f}/{nodes} "
              f"({time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1))
    print(f"{data['date']}, {data['machine']}; {args.series:,} series per node, "
          f"{args.latency[0] * 1000:g}-{args.latency[1] * 1000:g} ms per proxied request"
          f"{', over TLS' if args.tls else ''}\n")
    print(table(data))
    if args.plot:
        plot(data, Path(args.plot))


if __name__ == "__main__":
    main()
