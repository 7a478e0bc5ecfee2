"""The command line of scripts/kernel-matrix.sh: builds or updates the guests'
cache, then runs the set-up and a pytest selection on each kernel asked for."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .host import CACHE, say
from .image import ensure_image
from .kernels import KERNELS
from .matrix import run_host, run_kernel, setup_and_pytest, summary
from .qemu import REPOSITORY

DESCRIPTION = f"""\
Runs the tests on Debian's own kernels: {", ".join(f"{k.name} ({k.suite})" for k in KERNELS.values())}.

First it builds or updates the cache in {CACHE}
(IG_GUESTS_CACHE moves it): the host packages it needs (qemu-system-x86,
debootstrap, ...: installed with apt when missing), each kernel's newest image
and headers .debs from Debian's registry, wheels of requirements.lock and the
test extras, and a Debian 12 root filesystem with every package
scripts/setup.sh --test installs, made into one disk image. Only what changed
is made again; a cold build takes a few minutes.

Then, per kernel, it boots a QEMU guest (TCG, 2 CPUs, 2 GB, no network) on that
image (read-only: every guest starts from the same state), copies this checkout
into it (never writing to the host's), and runs scripts/setup.sh --test (which
must find everything present) and then pytest with the arguments given after
`--` (none: every gadget's exactness tests, EXACTNESS in tests/guests/matrix.py;
the whole suite is slow under TCG), with CI passed through.
Into OUTPUT/<kernel>/ go junit.xml, phases, output.log (the command's output)
and console.log (the whole serial console). The guest's console is shown as it
comes unless --quiet. At the end it prints, per kernel: the outcome, passed/
failed/skipped/error counts and the wall time of each phase (boot, setup,
tests), and the time the image build or check took.

Exit status: 0 when the command succeeded on every kernel, else 1."""

EXAMPLES = """\
examples:
  scripts/kernel-matrix.sh --write-docs docs/kernels.md   (the whole matrix and the host)
  scripts/kernel-matrix.sh -- tests/test_tcp_gadget.py -k exact
  scripts/kernel-matrix.sh --kernel 6.1 -- -m bpf -x
  scripts/kernel-matrix.sh --kernel 5.10 --command 'uname -r; .venv/bin/ig-metrics doctor'"""


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options before `--`; what follows it goes to pytest."""
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="scripts/kernel-matrix.sh", description=DESCRIPTION,
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [OPTIONS] [-- PYTEST ARGS...]")
    parser.add_argument("--kernel", action="append", choices=list(KERNELS),
                        help="a kernel to run on; repeat for several (default: all)")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "build" / "kernel-matrix",
                        help="folder of the per-kernel results (default: build/kernel-matrix)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds one guest may run before it is killed (default: 1800)")
    parser.add_argument("--command", help="run this shell command in the guests' checkout instead of "
                        "setup.sh --test and pytest")
    parser.add_argument("--no-refresh", action="store_true",
                        help="use the cached kernel .debs, without looking for newer builds")
    parser.add_argument("--rebuild", action="store_true",
                        help="make the root filesystem and the image again from scratch")
    parser.add_argument("--quiet", action="store_true", help="do not show the guests' consoles")
    parser.add_argument("--host", action="store_true",
                        help="also run the same on this machine's own kernel (as 'host')")
    parser.add_argument("--write-docs", type=Path, metavar="FILE",
                        help="write the measured tables (docs/kernels.md) from the results; "
                             "implies --host")
    return parser.parse_args(argv[:split]), argv[split + 1:]


def main(argv: list[str]) -> int:
    options, pytest_args = parse(argv)
    started = time.monotonic()
    image = ensure_image(REPOSITORY, refresh=not options.no_refresh, rebuild=options.rebuild)
    image_seconds = time.monotonic() - started
    say(f"image ready in {image_seconds:.0f} s")
    command = options.command or setup_and_pytest(pytest_args)
    runs = [run_kernel(image, kernel, command, folder=options.output.resolve() / kernel,
                       timeout=options.timeout, echo=not options.quiet)
            for kernel in options.kernel or list(KERNELS)]
    if options.host or options.write_docs:
        say("this machine's own kernel: the same command")
        runs.append(run_host(command, options.output.resolve() / "host"))
    print(summary(runs, image_seconds))
    if options.write_docs:
        # ig_metrics itself (the gadget specs): only here, where the host's .venv ran
        from .report import markdown, read_results

        results = [read_results(options.output.resolve() / run.kernel, run.kernel)
                   for run in runs]
        shown = "scripts/kernel-matrix.sh --write-docs docs/kernels.md" + (
            f" -- {' '.join(pytest_args)}" if pytest_args else "")
        options.write_docs.write_text(markdown([r for r in results if r is not None], shown,
                                               time.strftime("%Y-%m-%d")))
        say(f"wrote {options.write_docs}")
    return 0 if all(run.result.exit_code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
