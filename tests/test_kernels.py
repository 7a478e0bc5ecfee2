"""Debian 12's own kernel (6.1), on every run of the suite: a QEMU guest
(tests/guests, the kernel matrix's harness) of Debian 12's stock kernel, set up
as README's set-up script does, runs README's quick start (`ig-metrics run
--gadget tcp --profile local`, exact tcp metrics on :9464) and the tcp gadget's
exactness tests. The 6.1 kernel has no sock:sock_send_length: the bytes come
from the kprobe fallback, which this machine's kernel cannot attach. The other
kernels (5.10, 6.12) run in the whole matrix: scripts/kernel-matrix.sh."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guests.image import ensure_image
from tests.guests.matrix import run_kernel, setup_and_pytest

pytestmark = [pytest.mark.guest, pytest.mark.timeout(3600)]

REPOSITORY = Path(__file__).resolve().parent.parent
IN_GUEST = ("tests/test_quickstart.py", "tests/test_tcp_gadget.py",
            "tests/test_gadgets_exported.py", "-k", "quickstart or tcp")
GUEST_TIMEOUT = 2400.0


def test_quickstart_and_tcp_exactness_on_debian_12s_stock_kernel(tmp_path):
    image = ensure_image(REPOSITORY, refresh=False)
    run = run_kernel(image, "6.1", setup_and_pytest(list(IN_GUEST)), folder=tmp_path / "6.1",
                     timeout=GUEST_TIMEOUT, echo=False)
    log = (run.result.output or "")[-4000:]
    assert not run.result.timed_out, f"the guest ran past {GUEST_TIMEOUT:.0f} s\n{log}"
    assert run.phases.get("setup", (0, 1))[1] == 0, f"setup.sh failed in the guest\n{log}"
    assert run.counts is not None, f"pytest wrote no junit XML in the guest\n{log}"
    # CI=true goes into the guest: a test that needs BPF fails there, never skips.
    assert run.counts["failed"] == run.counts["errors"] == run.counts["skipped"] == 0, log
    assert run.counts["passed"] >= 10, run.counts
    assert run.result.exit_code == 0, log
    facts = (tmp_path / "6.1" / "facts.json").read_text()
    assert '"kprobe tcp_sendmsg + kretprobe tcp_sendmsg"' in facts
