#!/usr/bin/env python3
"""Make README's picture of the live table from a real run: `ig-metrics run`
in a tmux terminal of WIDTHxHEIGHT, real TCP traffic and execs from a few
named clients, the screen captured with its colours (`tmux capture-pane -e`)
and written as SVG by Rich. Needs root (the run attaches BPF programs) and
tmux (scripts/setup.sh --test installs it).

Usage: sudo .venv/bin/python scripts/live-table-picture.py [--output docs/live-table.svg]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tcp_workload import EchoCountServer, run_client  # noqa: E402

IG_METRICS = str(Path(sys.executable).parent / "ig-metrics")
PROFILE = """
exporters:
  prom-local: {type: prometheus, listen: "127.0.0.1:9464"}
profiles:
  local: {exporters: [prom-local], interval: 5s}
"""


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True,
                          text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "live-table.svg")
    parser.add_argument("--width", type=int, default=150)
    parser.add_argument("--height", type=int, default=34)
    options = parser.parse_args()
    profiles = Path(tempfile.mkdtemp(prefix="ig-metrics-picture-"))
    (profiles / "local.yaml").write_text(PROFILE)
    socket = f"igm-picture-{os.getpid()}"
    command = (f"env -u COLUMNS -u LINES TERM=xterm-256color {IG_METRICS} run -g tcp,exec "
               f"-p local --profiles-dir {profiles} --top 14 --duration 120s; sleep 60")
    tmux(socket, "new-session", "-d", "-s", "run", "-x", str(options.width), "-y",
         str(options.height), command)
    server = EchoCountServer(reply_bytes=48_000)
    try:
        time.sleep(6)
        # Some seconds of traffic, the screen taken while it flows, after a scrape.
        for second in range(8):
            for name, size in (("api-gateway", 2_400_000), ("checkout", 640_000),
                               ("inventory", 96_000), ("billing", 12_000 * (second < 3))):
                if size:
                    run_client("127.0.0.1", server.port, send_bytes=size, name=name)
            subprocess.run(["sh", "-c", "date >/dev/null; ls /nonexistent 2>/dev/null"],
                           check=False)
            if second == 6:
                urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read()
            time.sleep(0.6)
        screen = tmux(socket, "capture-pane", "-e", "-p", "-t", "run")
    finally:
        server.close()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    # The log lines of the start-up sit above the table: the picture is the table.
    lines = screen.rstrip("\n").split("\n")
    start = next(index for index, line in enumerate(lines) if "ig-metrics · tcp,exec" in line)
    console = Console(record=True, width=options.width, force_terminal=True,
                      color_system="truecolor", file=open(os.devnull, "w"))
    console.print(Text.from_ansi("\n".join(lines[start:])))
    options.output.write_text(console.export_svg(title="ig-metrics run -g tcp,exec -p local"))
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
