"""Several gadgets in one agent against one process per gadget, side by side in
one run.

Each round runs two sides, as real `ig-metrics run` processes (the console script
next to sys.executable, `--no-tui --interval 1s`, each with a profile of its own
in a temporary directory holding one prometheus exporter on a free port):
  * one agent: `run -g tcp,exec,syscalls,file,blockio,sched,dns`;
  * seven processes, one per gadget (`run -g tcp`, `run -g exec`, ...), started
    one after the other (the order reverses from round to round), each while
    those before it sit at rest.
The first side is started and measured at rest, then the second (the first
resting meanwhile), then both sides' BPF programs over one window; which side
goes first alternates from round to round. A light workload runs throughout:
one TCP connection, one exec of /bin/true, one file open, one direct 4 KiB
write with fsync and one DNS query (to a responder of this script) every 100 ms,
so that every gadget has something to count.

Start-up, per process: the time from launch to
  * the "attached" log line, and the agent's own account of its start which that
    line ends with (set-up, compile and load, exporters, attach; what is left of
    the time to "attached" is Python's start, the imports and the command line);
  * the first scrape of its Prometheus endpoint (polled every 50 ms) answering
    200 with samples;
  * the first scrape holding a sample of each of its gadgets' own metrics
    ("serving").
At rest, once the side's processes all serve and --settle seconds later:
  * memory from /proc/PID/status: VmRSS (of it RssAnon and RssFile) and VmHWM,
    the peak (reached while compiling);
  * CPU over a quiet --window (no scrapes): utime + stime of the process'
    threads (/proc/PID/stat), as a share of one core;
  * the sampler's tick: the self-metric
    ig_metrics_sampler_tick_duration_seconds{ig_metrics_gadget=G} (wall time of
    the gadget's last Sampler.tick: perf_counter around it), scraped --tick-scrapes
    times 1.1 s apart from every process. "One tick of all seven" is the sum of
    the one agent's seven gauges in one scrape (its tick reads the gadgets one
    after the other in one loop; the self-metrics built after it are counted
    on neither side); against it, the sum of the seven processes' medians.
Kernel side, with kernel.bpf_stats_enabled=1 (set back as it was at the end):
run_time_ns and run_cnt of every program over one --window with both sides
attached at once, so that the same events reach both (`bpftool -j prog list`;
a program is a process' if one of its bpf-prog file descriptors has that prog_id
in /proc/PID/fdinfo), as ns/event; and each program's tag, the kernel's hash of
its instructions (map references left out), one agent against own process.
Two programs on one hook run one after the other, the second on caches the
first warmed, so the ratios are given by which side's programs ran first.
Then every process is stopped with SIGINT at once (exit code 0 expected; the
time to exit is reported). Medians over rounds; an even --rounds balances the
order.

--tick-in-process instead times the tick in-process: for the seven gadgets
together and for each alone, a fresh Python process runs the real Agent of
`run` (this profile; gc frozen and malloc set as `run` sets them), ticks it
once a second --tick-count times after three warm-up ticks, the workload
running, and takes the CPU time (time.thread_time) and the wall time of each
whole Agent.tick() (every gadget's read, the self-metrics, the snapshot); one
tick of the seven against the sum of the seven ticks apart, per round.

--compile-threads N [N ...] instead measures compiling the seven gadgets'
programs concurrently: for each N, a fresh Python process constructs
GadgetProgram(resolve(name)) for the seven and calls .load() (compile with bcc
and have the kernel verify; --compile-what compile: only bcc's
BPF(text=..., cflags=...), with the text and cflags load() uses) in a pool of N
threads, then closes them. It reports the wall time, the process' CPU time, the
peak memory (VmHWM), whether every gadget loaded, the exit status (a crash shows
as a signal), and whether file descriptor 2 still reaches the terminal after the
loads (load() redirects fd 2 to capture the compiler's messages).

Run as root from the repository root:
    .venv/bin/python benchmarks/several_gadgets.py --rounds 4
    .venv/bin/python benchmarks/several_gadgets.py --tick-in-process --rounds 3 --tick-count 15
    .venv/bin/python benchmarks/several_gadgets.py --compile-threads 1 2 3 4 5 6 7 --rounds 3
    .venv/bin/python benchmarks/several_gadgets.py --compile-threads 1 2 4 7 --compile-what lock
Quicker: --rounds 2 --settle 5 --window 5 --tick-scrapes 3
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import multiprocessing
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
GADGETS = ("tcp", "exec", "syscalls", "file", "blockio", "sched", "dns")
ONE = "one agent"
TARGET_RSS_MB = 160.0
TARGET_SERVING_S = 5.0
PROFILE = """
exporters:
  several-prom: {{type: prometheus, listen: "127.0.0.1:{prom_port}"}}
profiles:
  bench-several: {{exporters: [several-prom], interval: 1s}}
"""
# "gadgets tcp,dns attached; exporting to ... (start-up: set-up 0.59s, compile and
# load 4.16s, exporters 0.00s, attach 0.02s)": what the agent logs once attached.
STARTUP_LOG = re.compile(r"set-up ([\d.]+)s, compile and load ([\d.]+)s, exporters ([\d.]+)s, "
                         r"attach ([\d.]+)s")
TICK_GAUGE = re.compile(r'^ig_metrics_sampler_tick_duration_seconds\{[^}]*'
                        r'ig_metrics_gadget="([^"]+)"[^}]*\} (\S+)$', re.M)
DNS_HOST = "127.53.21.1"           # not the tests' nor the other benchmarks' address
MEMORY_FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def qemu_running() -> bool:
    """Whether a QEMU guest runs on this machine (other people's tests boot kernels
    in QEMU here: CPU timings are then noisy)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().startswith("qemu-system"):
                return True
        except OSError:
            continue
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the light workload, in its own process -----------------------------------------------
def dns_query(query_id: int, name: str) -> bytes:
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!6H", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0" + \
        struct.pack("!2H", 1, 1)                       # type A, class IN


def serve_dns(server: socket.socket) -> None:
    """Answers every query with NOERROR and no answer: enough for the dns gadget."""
    while True:
        query, peer = server.recvfrom(512)
        if len(query) >= 12:
            server.sendto(query[:2] + struct.pack("!H", 0x8180) + query[4:], peer)


def run_workload(stop, period: float) -> None:
    """Every `period`: a TCP connection with a few bytes each way, an exec of
    /bin/true, a file open, a direct 4 KiB write with fsync, a DNS query."""
    import mmap

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_tcp() -> None:
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                connection.sendall(b"pong")

    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((DNS_HOST, 53))
    for target, argument in ((serve_tcp, ()), (serve_dns, (dns,))):
        threading.Thread(target=target, args=argument, daemon=True).start()
    scratch = tempfile.NamedTemporaryFile(dir="/var/tmp", prefix="ig-metrics-several-")
    block = memoryview(mmap.mmap(-1, 4096))            # page-aligned, as O_DIRECT wants
    query = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as resolver:
        resolver.settimeout(1.0)
        while not stop.wait(period):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"ping")
                sock.recv(64)
            subprocess.run(["/bin/true"], check=True)
            Path("/etc/hostname").read_bytes()
            descriptor = os.open(scratch.name, os.O_WRONLY | os.O_DIRECT)
            try:
                os.pwrite(descriptor, block, 0)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            query = (query + 1) & 0xFFFF
            resolver.sendto(dns_query(query, "several.test"), (DNS_HOST, 53))
            try:
                resolver.recv(512)
            except TimeoutError:
                pass
    scratch.close()


# --- one ig-metrics run process -------------------------------------------------------------
def metric_prefixes() -> dict[str, tuple[str, ...]]:
    """Gadget -> the Prometheus names its own metrics start with."""
    from ig_metrics.gadgets import resolve
    return {name: tuple(metric.name.replace(".", "_") for metric in resolve(name).metrics)
            for name in GADGETS}


def program_gadgets() -> dict[str, str]:
    """Program name -> its gadget, for the hooks each gadget attaches on this kernel."""
    from ig_metrics.bpf.hookplan import plan_hooks
    from ig_metrics.gadgets import resolve
    return {hook.program: name for name in GADGETS for hook in plan_hooks(resolve(name)).hooks}


def full_name(name: str, owners: dict[str, str]) -> str:
    """A program's name as its gadget spells it: bpftool shows the whole name when
    the program has BTF, else the kernel's first 15 characters."""
    if name in owners:
        return name
    return next((full for full in owners if full[:15] == name), name)


class Agent:
    """`ig-metrics run -g GADGETS --no-tui --interval 1s` with a prometheus
    exporter of its own; times its start from its log and its endpoint."""

    def __init__(self, label: str, gadgets: tuple[str, ...], scratch: Path,
                 prefixes: dict[str, tuple[str, ...]]) -> None:
        self.label = label
        self.gadgets = gadgets
        self.prefixes = prefixes
        self.prom_port = free_port()
        profiles = scratch / label.replace(" ", "-")
        profiles.mkdir(parents=True, exist_ok=True)
        (profiles / "bench.yaml").write_text(PROFILE.format(prom_port=self.prom_port))
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith("OTEL_") and not name.lower().endswith("_proxy")}
        self.url = f"http://127.0.0.1:{self.prom_port}/metrics"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.result: dict = {"label": label}
        self.log: list[str] = []
        self._done = threading.Event()
        self._interrupted = False
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [IG_METRICS, "run", "-g", ",".join(gadgets), "--profile", "bench-several",
             "--profiles-dir", str(profiles), "--interval", "1s", "--no-tui"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=environment, cwd=profiles)
        self.pid = self.process.pid
        threading.Thread(target=self._read_log, daemon=True).start()
        threading.Thread(target=self._poll_endpoint, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            del self.log[:-50]
            if " attached; exporting to " in line and "attached" not in self.result:
                self.result["attached"] = time.monotonic() - self.started
                match = STARTUP_LOG.search(line)
                if match:
                    (self.result["set_up"], self.result["compile"],
                     self.result["exporters_start"], self.result["attach"]) = (
                        float(value) for value in match.groups())

    def scrape(self, timeout: float = 5.0) -> str:
        with self.opener.open(self.url, timeout=timeout) as response:
            return response.read().decode()

    def _has_gadget_metrics(self, body: str) -> bool:
        names = {line.partition("{")[0].partition(" ")[0] for line in body.splitlines()
                 if line and not line.startswith("#")}
        return all(any(name.startswith(self.prefixes[gadget]) for name in names)
                   for gadget in self.gadgets)

    def _poll_endpoint(self) -> None:
        while not self._done.is_set():
            try:
                body = self.scrape(timeout=2.0)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                body = ""
            now = time.monotonic() - self.started
            if body and any(line and not line.startswith("#") for line in body.splitlines()):
                self.result.setdefault("endpoint", now)
                if self._has_gadget_metrics(body):
                    self.result["serving"] = now
                    return
            self._done.wait(0.05)

    def wait_serving(self, timeout: float) -> dict:
        deadline = self.started + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if "serving" in self.result and "attached" in self.result:
                if "compile" in self.result:     # Python, imports, the command line
                    self.result["before_set_up"] = self.result["attached"] - sum(
                        self.result[key] for key in ("set_up", "compile", "exporters_start",
                                                     "attach"))
                return self.result
            time.sleep(0.02)
        self._done.set()
        raise RuntimeError(f"{self.label}: not serving within {timeout:g}s (exit code "
                           f"{self.process.poll()}):\n{''.join(self.log[-20:])}")

    def memory(self) -> dict[str, float]:
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in MEMORY_FIELDS:
                fields[name] = int(value.split()[0]) / 1024
        return fields

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def program_ids(self) -> set[int]:
        """The ids of the BPF programs this process holds a descriptor of."""
        ids = set()
        fds = Path(f"/proc/{self.pid}/fd")
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) != "anon_inode:bpf-prog":
                    continue
                info = Path(f"/proc/{self.pid}/fdinfo/{fd.name}").read_text()
            except OSError:
                continue
            match = re.search(r"^prog_id:\s+(\d+)$", info, re.M)
            if match:
                ids.add(int(match.group(1)))
        return ids

    def tick_durations(self) -> dict[str, float]:
        return {gadget: float(value) for gadget, value in TICK_GAUGE.findall(self.scrape())}

    def interrupt(self) -> None:
        """SIGINT, once, as Ctrl-C: the agent detaches, exports once more and exits 0.
        (A second one that lands after its final export, as it exits, ends it with
        130 or by the signal instead.)"""
        self._done.set()
        if not self._interrupted and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self._interrupted = True

    def stop(self) -> int:
        """Interrupts and waits for the exit (killed after 30 s); the exit code."""
        self.interrupt()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9


def bpf_programs() -> dict[int, tuple[str, int, int, str]]:
    """Program id -> (name, run_time_ns, run_cnt, tag), from `bpftool -j prog list`.
    The tag is the kernel's hash of the program's instructions, map references
    left out: equal tags, the same instructions."""
    listing = json.loads(subprocess.run(["bpftool", "-j", "prog", "list"], check=True,
                                        capture_output=True, text=True).stdout)
    return {entry["id"]: (entry.get("name", ""), entry.get("run_time_ns", 0),
                          entry.get("run_cnt", 0), entry.get("tag", ""))
            for entry in listing}


# --- one round ------------------------------------------------------------------------------
def start(label: str, gadgets: tuple[str, ...], scratch: Path, prefixes, timeout: float,
          running: list[Agent]) -> Agent:
    agent = Agent(label, gadgets, scratch, prefixes)
    running.append(agent)
    result = agent.wait_serving(timeout)
    print(f"  {label}: attached {result['attached']:.2f} s (compile and load "
          f"{result.get('compile', float('nan')):.2f} s), serving {result['serving']:.2f} s",
          file=sys.stderr, flush=True)
    return agent


def start_side(side: str, round_number: int, args, scratch: Path, prefixes,
               running: list[Agent]) -> list[Agent]:
    """The one agent, or the seven processes one after the other."""
    if side == ONE:
        return [start(ONE, GADGETS, scratch, prefixes, args.timeout, running)]
    order = list(GADGETS) if round_number % 2 == 0 else list(GADGETS)[::-1]
    return [start(gadget, (gadget,), scratch, prefixes, args.timeout, running)
            for gadget in order]


def measure_at_rest(agents: list[Agent], args) -> None:
    """After --settle: memory; CPU over a quiet --window; the tick self-metric."""
    seen = {"qemu": qemu_running(), "load": os.getloadavg()[0]}
    time.sleep(args.settle)
    for agent in agents:
        if agent.process.poll() is not None:
            raise RuntimeError(f"{agent.label} exited ({agent.process.returncode}):\n"
                               f"{''.join(agent.log[-20:])}")
        agent.result.update(agent.memory())
    before = {agent.label: agent.cpu_seconds() for agent in agents}
    began = time.monotonic()
    time.sleep(args.window)
    elapsed = time.monotonic() - began
    for agent in agents:
        agent.result["cpu_percent"] = 100 * (agent.cpu_seconds() - before[agent.label]) / elapsed
        agent.result["ticks"] = []
    for _ in range(args.tick_scrapes):
        for agent in agents:
            try:
                agent.result["ticks"].append(agent.tick_durations())
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                print(f"  {agent.label}: scrape failed: {error}", file=sys.stderr)
        time.sleep(1.1)
    seen["qemu"] |= qemu_running()
    agents[0].result["conditions"] = seen


def measure_kernel_side(agents: list[Agent], args, owners: dict[str, str]) -> None:
    """Every process' programs over one --window, the two sides attached at
    once: the same events reach both."""
    owned = {agent.label: agent.program_ids() for agent in agents}
    before = bpf_programs()
    time.sleep(args.window)
    after = bpf_programs()
    for agent in agents:
        programs = {}
        for prog_id in owned[agent.label]:
            if prog_id not in before or prog_id not in after:
                continue
            name, time_after, count_after, tag = after[prog_id]
            name = full_name(name, owners)
            programs[name] = (owners.get(name, "attribution"), time_after - before[prog_id][1],
                              count_after - before[prog_id][2], tag)
        agent.result["programs"] = programs


def run_round(round_number: int, args, scratch: Path, prefixes, owners) -> dict:
    """The first side started and measured at rest, then the second (the first
    resting meanwhile), then both sides' programs at once; which side goes first
    alternates from round to round, and with it which side's programs run
    first on each event."""
    sides = [ONE, "separate"] if round_number % 2 == 0 else ["separate", ONE]
    running: list[Agent] = []
    result: dict = {"agents": {}, "exit_codes": {}, "order": sides}
    try:
        for side in sides:
            measure_at_rest(start_side(side, round_number, args, scratch, prefixes, running),
                            args)
        measure_kernel_side(running, args, owners)
    finally:
        # SIGINT to every process at once, then the time each takes to exit.
        stopping = time.monotonic()
        for agent in running:
            agent.interrupt()
        for agent in running:
            result["exit_codes"][agent.label] = agent.stop()
            agent.result["stop"] = time.monotonic() - stopping
    result["agents"] = {agent.label: agent.result for agent in running}
    return result


# --- report ---------------------------------------------------------------------------------
def median(values) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def show(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def per_round(rounds: list[dict], label: str, key: str) -> list:
    return [run["agents"][label].get(key) for run in rounds if label in run["agents"]]


def tick_sum_one(run: dict) -> float | None:
    """Median over the scrapes of a round of the one agent's seven gauges summed."""
    sums = [sum(ticks.get(gadget, 0.0) for gadget in GADGETS)
            for ticks in run["agents"][ONE]["ticks"] if all(g in ticks for g in GADGETS)]
    return median(sums)


def tick_median(run: dict, label: str, gadget: str) -> float | None:
    return median(ticks.get(gadget) for ticks in run["agents"][label]["ticks"])


def ns_per_event(run: dict, label: str, program: str) -> tuple[float | None, int]:
    entry = run["agents"][label]["programs"].get(program)
    if entry is None or not entry[2]:
        return None, 0
    return entry[1] / entry[2], entry[2]


def same_instructions(rounds: list[dict], gadget: str, program: str) -> str:
    """Whether the program's tag is the same in the one agent and in its gadget's
    own process, in every round."""
    pairs = [(run["agents"][ONE]["programs"].get(program, (None,) * 4)[3],
              run["agents"][gadget]["programs"].get(program, (None,) * 4)[3])
             for run in rounds]
    pairs = [(one, own) for one, own in pairs if one and own]
    if not pairs:
        return "–"
    return "yes (tag)" if all(one == own for one, own in pairs) else "NO: tags differ"


def report(rounds: list[dict], args) -> None:
    n = len(rounds)
    print(f"\n{n} round(s); every process `--no-tui --interval 1s`, one prometheus exporter; "
          f"memory after {args.settle:g} s at rest; CPU and ns/event over a {args.window:g} s "
          f"window; ticks from {args.tick_scrapes} scrapes; medians over rounds\n")

    def separate_sum(key: str, reducer=sum) -> list[float]:
        return [reducer(run["agents"][gadget][key] for gadget in GADGETS) for run in rounds]

    one = {key: median(per_round(rounds, ONE, key)) for key in
           ("VmRSS", "RssAnon", "RssFile", "VmHWM", "attached", "compile", "set_up",
            "endpoint", "serving", "cpu_percent", "stop", "before_set_up")}
    seven = {key: median(separate_sum(key)) for key in
             ("VmRSS", "RssAnon", "RssFile", "VmHWM", "compile", "set_up", "cpu_percent",
              "before_set_up")}
    seven["attached_max"] = median(separate_sum("attached", max))
    seven["serving_max"] = median(separate_sum("serving", max))
    seven["attached_sum"] = median(separate_sum("attached"))
    seven["serving_sum"] = median(separate_sum("serving"))
    seven["stop_max"] = median(separate_sum("stop", max))
    one_tick = median(tick_sum_one(run) for run in rounds)
    seven_tick = median(sum(tick_median(run, gadget, gadget) or 0.0 for gadget in GADGETS)
                        for run in rounds)
    print("| | one agent, seven gadgets | seven processes, one gadget each | target |")
    print("|---|---|---|---|")
    print(f"| VmRSS at rest, MB | **{show(one['VmRSS'], 1)}** | {show(seven['VmRSS'], 1)} "
          f"(sum) | ≤ {TARGET_RSS_MB:g} |")
    print(f"| of it RssAnon / RssFile, MB | {show(one['RssAnon'], 1)} / "
          f"{show(one['RssFile'], 1)} | {show(seven['RssAnon'], 1)} / "
          f"{show(seven['RssFile'], 1)} (sums) | |")
    print(f"| VmHWM (peak), MB | {show(one['VmHWM'], 1)} | {show(seven['VmHWM'], 1)} (sum) | |")
    print(f"| launch to \"attached\", s | {show(one['attached'])} | "
          f"{show(seven['attached_max'])} (slowest); {show(seven['attached_sum'])} (sum) | |")
    print(f"| of it compile and load, s | {show(one['compile'])} | {show(seven['compile'])} "
          f"(sum) | |")
    print(f"| of it Python, imports and the command line, s | {show(one['before_set_up'])} | "
          f"{show(seven['before_set_up'])} (sum) | |")
    print(f"| of it set-up, s | {show(one['set_up'])} | {show(seven['set_up'])} (sum) | |")
    print(f"| launch to a scrape with samples, s | {show(one['endpoint'])} | | |")
    print(f"| launch to a scrape with every gadget's metrics, s | **{show(one['serving'])}** | "
          f"{show(seven['serving_max'])} (slowest); {show(seven['serving_sum'])} (sum, one "
          f"after the other) | ≤ {TARGET_SERVING_S:g} |")
    print(f"| tick (gadget reads), ms | **{show(one_tick and one_tick * 1e3)}** | "
          f"{show(seven_tick and seven_tick * 1e3)} (sum of the seven) | ≤ the sum |")
    print(f"| CPU at rest, % of a core | {show(one['cpu_percent'])} | "
          f"{show(seven['cpu_percent'])} (sum) | |")
    print(f"| SIGINT to exit, s | {show(one['stop'])} | {show(seven['stop_max'])} (all seven, "
          f"signalled at once) | |")

    print("\n| gadget | own process: VmRSS MB | VmHWM MB | attached s | compile and load s "
          "| serving s | tick ms | in the one agent: tick ms |")
    print("|---|---|---|---|---|---|---|---|")
    for gadget in GADGETS:
        own_tick = median(tick_median(run, gadget, gadget) for run in rounds)
        one_gadget_tick = median(tick_median(run, ONE, gadget) for run in rounds)
        print(f"| {gadget} | {show(median(per_round(rounds, gadget, 'VmRSS')), 1)} | "
              f"{show(median(per_round(rounds, gadget, 'VmHWM')), 1)} | "
              f"{show(median(per_round(rounds, gadget, 'attached')))} | "
              f"{show(median(per_round(rounds, gadget, 'compile')))} | "
              f"{show(median(per_round(rounds, gadget, 'serving')))} | "
              f"{show(own_tick and own_tick * 1e3, 3)} | "
              f"{show(one_gadget_tick and one_gadget_tick * 1e3, 3)} |")

    print("\nKernel side, ns/event (run_time_ns / run_cnt over one window with both sides "
          "attached at once, so the same events reach both; programs that ran in it). Two "
          "programs on one hook run one after the other, the second on warmer caches: "
          "the ratio is given with the one agent's programs attached first and second "
          "(sides alternate by round), and their geometric mean:\n")
    print("| gadget | program | events | one agent ns/event | own process ns/event "
          "| one / own, one agent first | one / own, second | geometric mean | "
          "same instructions |")
    print("|---|---|---|---|---|---|---|---|---|")
    owners = program_gadgets()
    for program, gadget in owners.items():
        one_ns = median(ns_per_event(run, ONE, program)[0] for run in rounds)
        own_ns = median(ns_per_event(run, gadget, program)[0] for run in rounds)
        if one_ns is None and own_ns is None:
            continue
        ratios = {}
        for first in (True, False):
            ratios[first] = median(
                ns_per_event(run, ONE, program)[0] / ns_per_event(run, gadget, program)[0]
                for run in rounds if (run["order"][0] == ONE) == first
                and ns_per_event(run, ONE, program)[0] and ns_per_event(run, gadget, program)[0])
        both = (ratios[True] * ratios[False]) ** 0.5 if ratios[True] and ratios[False] else None
        print(f"| {gadget} | {program} | "
              f"{show(median(ns_per_event(run, ONE, program)[1] for run in rounds), 0)} | "
              f"{show(one_ns, 0)} | {show(own_ns, 0)} | {show(ratios[True])} | "
              f"{show(ratios[False])} | {show(both)} | "
              f"{same_instructions(rounds, gadget, program)} |")
    attribution = sorted({program for run in rounds for label, agent in run["agents"].items()
                          for program, entry in agent["programs"].items()
                          if entry[0] == "attribution"})
    for program in attribution:
        one_ns = median(ns_per_event(run, ONE, program)[0] for run in rounds)
        own = [ns_per_event(run, gadget, program) for run in rounds for gadget in GADGETS
               if program in run["agents"][gadget]["programs"]]
        holders = {gadget for run in rounds for gadget in GADGETS
                   if program in run["agents"][gadget]["programs"]}
        print(f"| (cgroup recorder: one in the agent, one in each of "
              f"{', '.join(sorted(holders))}) | {program} | "
              f"{show(median(ns_per_event(run, ONE, program)[1] for run in rounds), 0)} | "
              f"{show(one_ns, 0)} | {show(median(ns for ns, _ in own), 0)} | | | | |")

    for index, run in enumerate(rounds):
        conditions = {label: agent["conditions"] for label, agent in run["agents"].items()
                      if "conditions" in agent}
        print(f"round {index + 1}: " + ", ".join(
            f"{'one agent' if label == ONE else 'seven processes'}: QEMU "
            f"{'running' if seen['qemu'] else 'idle'}, load {seen['load']:.1f} at its start"
            for label, seen in conditions.items()))
    print("\nEvery round: " + "; ".join(
        f"({' first, then '.join(run['order'])}) VmRSS {run['agents'][ONE]['VmRSS']:.1f} vs "
        f"{sum(run['agents'][g]['VmRSS'] for g in GADGETS):.1f} MB, serving "
        f"{run['agents'][ONE]['serving']:.2f} s (compile and load "
        f"{run['agents'][ONE].get('compile', float('nan')):.2f}), tick "
        f"{(tick_sum_one(run) or 0) * 1e3:.2f} vs "
        f"{sum(tick_median(run, g, g) or 0 for g in GADGETS) * 1e3:.2f} ms" for run in rounds))
    codes = {label: code for run in rounds for label, code in run["exit_codes"].items()
             if code != 0}
    print("exit codes on SIGINT: " + (", ".join(f"{label} {code}" for label, code in codes.items())
                                      or "all 0"))
    if one["VmRSS"] is not None:
        print(f"RSS target: {one['VmRSS']:.1f} MB against ≤ {TARGET_RSS_MB:g}: "
              f"{'met' if one['VmRSS'] <= TARGET_RSS_MB else 'not met'}")
    if one["serving"] is not None:
        print(f"start-up target: serving at {one['serving']:.2f} s against ≤ "
              f"{TARGET_SERVING_S:g}: {'met' if one['serving'] <= TARGET_SERVING_S else 'not met'}")
    if one_tick is not None and seven_tick:
        print(f"tick target: {one_tick * 1e3:.2f} ms against the sum {seven_tick * 1e3:.2f} ms "
              f"(ratio {one_tick / seven_tick:.2f}): "
              f"{'met' if one_tick <= seven_tick else 'not met'}")


# --- the tick, in-process --------------------------------------------------------------------
def tick_child(gadgets: list[str], ticks: int, warmup: int) -> None:
    """In a fresh process: the real Agent of `run` with `gadgets` (the bench
    profile; gc frozen and malloc set as `run` sets them), ticked once a second;
    the CPU time (time.thread_time: the tick runs in this thread) and the wall
    time of each whole Agent.tick(), every gadget's read and the self-metrics;
    one line of JSON on stdout."""
    import gc

    from ig_metrics.app.agent import Agent
    from ig_metrics.bpf.memory import fix_malloc_thresholds
    from ig_metrics.catalog.loading import load_catalog
    from ig_metrics.gadgets.selection import select_gadgets

    with tempfile.TemporaryDirectory(prefix="ig-metrics-several-tick-") as scratch:
        (Path(scratch) / "bench.yaml").write_text(PROFILE.format(prom_port=free_port()))
        profile = load_catalog([Path(scratch)]).profile("bench-several", interval_override=1.0)
    fix_malloc_thresholds()
    agent = Agent(select_gadgets(gadgets), profile)
    agent.start()
    gc.collect()
    gc.freeze()
    cpu, wall, reads = [], [], []
    try:
        for index in range(warmup + ticks):
            time.sleep(1.0)
            began_cpu, began = time.thread_time(), time.perf_counter()
            agent.tick()
            ended_cpu, ended = time.thread_time(), time.perf_counter()
            if index >= warmup:
                cpu.append(ended_cpu - began_cpu)
                wall.append(ended - began)
                reads.append({gadget.spec.name: gadget.sampler.last_tick_seconds
                              for gadget in agent.gadgets})
    finally:
        agent.stop()
    print(json.dumps({"gadgets": gadgets, "cpu": cpu, "wall": wall, "reads": reads}), flush=True)


def tick_experiment(args) -> None:
    """The one agent's tick against each gadget's own, one child process at a
    time, the workload running; rounds alternate the order."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workload = context.Process(target=run_workload, args=(stop, 0.1), daemon=True)
    workload.start()
    configurations = [list(GADGETS)] + [[gadget] for gadget in GADGETS]
    runs: dict[str, list[dict]] = {",".join(config): [] for config in configurations}
    try:
        for round_number in range(args.rounds):
            order = configurations if round_number % 2 == 0 else configurations[::-1]
            for config in order:
                child = subprocess.run(
                    [sys.executable, __file__, "--tick-child", ",".join(config),
                     "--tick-count", str(args.tick_count)],
                    capture_output=True, text=True, timeout=600, cwd=ROOT)
                lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
                if child.returncode != 0 or not lines:
                    raise RuntimeError(f"tick child {config} failed ({child.returncode}):\n"
                                       f"{child.stderr[-2000:]}")
                run = json.loads(lines[-1])
                run["qemu"] = qemu_running()
                runs[",".join(config)].append(run)
                print(f"round {round_number + 1} {','.join(config)}: CPU "
                      f"{statistics.median(run['cpu']) * 1e3:.2f} ms, wall "
                      f"{statistics.median(run['wall']) * 1e3:.2f} ms per tick (medians of "
                      f"{len(run['cpu'])}){', QEMU running' if run['qemu'] else ''}",
                      file=sys.stderr, flush=True)
    finally:
        stop.set()
        workload.join(10)
    everything = ",".join(GADGETS)

    def per_run(config: str, key: str) -> list[float]:
        return [statistics.median(run[key]) for run in runs[config]]

    print(f"\nOne Agent.tick() (every gadget's read and the self-metrics), in-process, once a "
          f"second under the light workload; medians of {args.tick_count} ticks per run, then "
          f"the median of {args.rounds} run(s); ms\n")
    print("| | CPU ms per tick | wall ms per tick |")
    print("|---|---|---|")
    one_cpu, one_wall = median(per_run(everything, "cpu")), median(per_run(everything, "wall"))
    print(f"| one agent, seven gadgets | **{one_cpu * 1e3:.2f}** | {one_wall * 1e3:.2f} |")
    sums = [sum(statistics.median(runs[gadget][index]["cpu"]) for gadget in GADGETS)
            for index in range(args.rounds)]
    wall_sums = [sum(statistics.median(runs[gadget][index]["wall"]) for gadget in GADGETS)
                 for index in range(args.rounds)]
    print(f"| seven agents, one gadget each: the sum of their ticks | **{median(sums) * 1e3:.2f}** "
          f"| {median(wall_sums) * 1e3:.2f} |")
    for gadget in GADGETS:
        print(f"| {gadget} alone | {median(per_run(gadget, 'cpu')) * 1e3:.2f} | "
              f"{median(per_run(gadget, 'wall')) * 1e3:.2f} |")
    print(f"\none / sum of seven, CPU: {one_cpu / median(sums):.2f} (target ≤ 1); per round: "
          + ", ".join(f"{statistics.median(runs[everything][index]['cpu']) / sums[index]:.2f}"
                      for index in range(args.rounds)))
    print("QEMU running during: " + (", ".join(sorted({config for config, mine in runs.items()
                                                      for run in mine if run["qemu"]}))
                                     or "none of the runs"))


# --- compiling concurrently -----------------------------------------------------------------
def compile_child(threads: int, what: str) -> None:
    """In a fresh process: the seven gadgets loaded in a pool of `threads`
    threads; one line of JSON on stdout."""
    import bcc  # noqa: F401  (bcc's import is not part of the compile)

    from ig_metrics.bpf.loader import GadgetProgram, program_source
    from ig_metrics.gadgets import INCLUDE_DIR, resolve
    from ig_metrics.gadgets.hooks import HOOK_KINDS

    programs = [GadgetProgram(resolve(name)) for name in GADGETS]
    seconds: dict[str, float] = {}
    compile_seconds: dict[str, float] = {}
    compiling = threading.Lock()

    def load(program: GadgetProgram):
        began = time.perf_counter()
        if what == "load":
            program.load()
        else:
            text, _, _ = program_source(program.spec)
            cflags = [f"-I{INCLUDE_DIR}", *program.cflags]
            if what == "lock":
                with compiling:
                    program.bpf = bcc.BPF(text=text.encode(), cflags=cflags)
            else:
                program.bpf = bcc.BPF(text=text.encode(), cflags=cflags)
            compile_seconds[program.spec.name] = time.perf_counter() - began
            if what == "lock":        # the kernel's verification, concurrently
                for hook in program.plan.hooks:
                    program.bpf.load_func(hook.program.encode(),
                                          HOOK_KINDS[hook.kind].program_type(bcc.BPF))
        seconds[program.spec.name] = time.perf_counter() - began

    cpu = time.process_time()
    began = time.perf_counter()
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for program, future in zip(programs, [pool.submit(load, p) for p in programs]):
            try:
                future.result()
            except Exception as error:  # noqa: BLE001  (reported, not raised)
                errors.append(f"{program.spec.name}: {error}")
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    loaded = sum(1 for program in programs if program.bpf is not None)
    hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    for program in programs:
        program.close()
    os.write(2, b"fd2-check\n")        # does fd 2 still reach our parent?
    print(json.dumps({"threads": threads, "wall": wall, "cpu": cpu, "loaded": loaded,
                      "errors": errors, "hwm": hwm, "seconds": seconds,
                      "compile_seconds": compile_seconds}), flush=True)


COMPILE_WHAT = {
    "load": "GadgetProgram.load(): bcc's compile and the kernel's verification, in each thread",
    "compile": "bcc's BPF(text=..., cflags=...) only, in each thread",
    "lock": "bcc's BPF() one at a time under a lock, the kernel's verification "
            "(BPF.load_func of each hook) in the threads",
}


def compile_experiment(args) -> None:
    runs: dict[int, list[dict]] = {threads: [] for threads in args.compile_threads}
    for round_number in range(args.rounds):
        order = args.compile_threads if round_number % 2 == 0 else args.compile_threads[::-1]
        for threads in order:
            began = time.monotonic()
            child = subprocess.run(
                [sys.executable, "-X", "faulthandler", __file__, "--compile-child",
                 str(threads), "--compile-what", args.compile_what],
                capture_output=True, text=True, timeout=600, cwd=ROOT)
            run: dict = {"returncode": child.returncode, "elapsed": time.monotonic() - began,
                         "fd2": "fd2-check" in child.stderr}
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            if lines:
                run.update(json.loads(lines[-1]))
            else:
                run["tail"] = child.stderr[-400:]
            runs[threads].append(run)
            status = (f"exit {child.returncode}" if child.returncode >= 0
                      else f"killed by {signal.Signals(-child.returncode).name} "
                           f"{run['elapsed']:.1f} s after launch")
            print(f"round {round_number + 1}, {threads} thread(s): {status}"
                  + (f", wall {run['wall']:.2f} s, CPU {run['cpu']:.2f} s, "
                     f"{run['loaded']}/{len(GADGETS)} loaded, VmHWM {run['hwm']:.0f} MB, "
                     f"fd 2 {'intact' if run['fd2'] else 'LOST'}"
                     + (f", errors {run['errors']}" if run['errors'] else "")
                     if "wall" in run else ""),
                  file=sys.stderr, flush=True)
    lock = args.compile_what == "lock"

    def verify_seconds(run: dict) -> float:
        """The verification's share of each gadget's load, summed."""
        return sum(run["seconds"][name] - compiled
                   for name, compiled in run["compile_seconds"].items())

    print(f"\nLoading the seven gadgets ({COMPILE_WHAT[args.compile_what]}) in a pool of N "
          f"threads, a fresh process each time; medians of {args.rounds}\n")
    print("| threads | runs crashed | all loaded | wall s | CPU s | CPU / wall | VmHWM MB "
          "| fd 2 intact after | slowest gadget s | bcc compile s (sum) | verify s (sum) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for threads, mine in runs.items():
        good = [run for run in mine if "wall" in run]
        timed = [run for run in good if run["seconds"]]
        split = [run for run in good if run["compile_seconds"]]
        crashed = [run for run in mine if run["returncode"] != 0]
        wall = median(run["wall"] for run in good)
        cpu = median(run["cpu"] for run in good)
        signals = collections.Counter(
            signal.Signals(-run["returncode"]).name if run["returncode"] < 0
            else f"exit {run['returncode']}" for run in crashed)
        crash_note = (" (" + ", ".join(f"{name} {count}" for name, count in signals.items())
                      + f"; {median(run['elapsed'] for run in crashed):.1f} s after launch)"
                      if crashed else "")
        print(f"| {threads} | {len(crashed)} of {len(mine)}{crash_note} | "
              f"{sum(1 for run in good if run['loaded'] == len(GADGETS) and not run['errors'])}"
              f" of {len(mine)} | {show(wall)} | {show(cpu)} | "
              f"{show(cpu / wall if wall and cpu else None)} | "
              f"{show(median(run['hwm'] for run in good), 0)} | "
              + (f"{sum(1 for run in good if run['fd2'])} of {len(good)}" if good else "–")
              + f" | {show(median(max(run['seconds'].values()) for run in timed))}"
              f" | {show(median(sum(run['compile_seconds'].values()) for run in split))}"
              f" | {show(median(verify_seconds(run) for run in split)) if lock else '–'} |")


# --- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds; each side goes first in every other one (default 4)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds at rest, once the side's processes serve, before memory "
                             "is read (default 20)")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds over which CPU, and then ns/event, are measured "
                             "(default 20)")
    parser.add_argument("--tick-scrapes", type=int, default=10,
                        help="scrapes of the tick self-metric per process (default 10)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds a process may take to serve before giving up")
    parser.add_argument("--compile-threads", type=int, nargs="+", metavar="N",
                        help="measure compiling the seven gadgets in N threads instead")
    parser.add_argument("--compile-what", choices=tuple(COMPILE_WHAT), default="load",
                        help="with --compile-threads: " + "; ".join(
                            f"{key}: {value}" for key, value in COMPILE_WHAT.items()))
    parser.add_argument("--compile-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tick-in-process", action="store_true",
                        help="measure the tick's CPU in-process instead: the real Agent with "
                             "the seven gadgets against each gadget alone")
    parser.add_argument("--tick-count", type=int, default=20,
                        help="with --tick-in-process: ticks per run, once a second (default 20)")
    parser.add_argument("--tick-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent attaches BPF programs")
    if args.compile_child:
        compile_child(args.compile_child, args.compile_what)
        return
    if args.tick_child:
        tick_child(args.tick_child.split(","), args.tick_count, warmup=3)
        return
    if args.tick_in_process:
        tick_experiment(args)
        return
    if args.compile_threads:
        compile_experiment(args)
        return
    prefixes = metric_prefixes()
    owners = program_gadgets()
    stats_before = Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workload = context.Process(target=run_workload, args=(stop, 0.1), daemon=True)
    workload.start()
    rounds = []
    try:
        with tempfile.TemporaryDirectory(prefix="ig-metrics-several-") as scratch:
            for round_number in range(args.rounds):
                print(f"round {round_number + 1}:", file=sys.stderr, flush=True)
                rounds.append(run_round(round_number, args, Path(scratch), prefixes, owners))
    finally:
        stop.set()
        workload.join(10)
        subprocess.run(["sysctl", "-qw", f"kernel.bpf_stats_enabled={stats_before}"],
                       check=False)
    report(rounds, args)


if __name__ == "__main__":
    main()
