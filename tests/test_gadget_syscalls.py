"""The syscalls gadget against the real kernel: a known number of calls of a
chosen syscall (getppid through ctypes) and of a failing one (close(-1):
EBADF), counted exactly by name and errno, with one latency observation per
call; processes the filter leaves out are not counted at all."""

from __future__ import annotations

import time

import pytest

from tests.named_process import NamedProcess
from tests.snapshots import CONTAINER_ATTRIBUTES, points, total

CALLS = r"""
calls, failures = map(int, args)
for _ in range(calls):
    libc.getppid()
for _ in range(failures):
    libc.close(-1)
"""


def attach_syscalls(process_filter, *, idle_expiry=0.0, arguments=(), attribution=None,
                    atomics=None):
    from ig_metrics.bpf.hookplan import plan_hooks
    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve("syscalls").with_arguments(list(arguments))
    program = GadgetProgram(spec, process_filter=process_filter,
                            plan=plan_hooks(spec, atomics=atomics))
    program.load()
    program.attach()
    return program, Sampler(spec, program, resource=(), idle_expiry=idle_expiry,
                            attribution=attribution)


@pytest.mark.bpf
@pytest.mark.parametrize("atomics", [None, False], ids=["as-here", "without-atomics"])
def test_calls_errors_and_latency_are_exact_for_a_command(bpf_available, atomics):
    """Also as kernels before 5.12 build it: a thread's slot claimed under a
    lock map instead of by compare-and-swap."""
    from ig_metrics.bpf.filters import ProcessFilter

    counted = NamedProcess("igm-sys", CALLS, "1234", "37")
    other = NamedProcess("igm-sys-other", CALLS, "500", "5")
    program, sampler = attach_syscalls(ProcessFilter(comm="igm-sys"), atomics=atomics)
    try:
        counted.run()
        other.run()
        snapshot = sampler.tick()
    finally:
        program.close()
        counted.kill()
        other.kill()
    assert total(snapshot, "syscall.calls", syscall__name="getppid") == 1234
    assert total(snapshot, "syscall.errors", syscall__name="close", error__type="EBADF") == 37
    assert total(snapshot, "syscall.calls", syscall__name="close") >= 37
    assert total(snapshot, "syscall.errors", syscall__name="getppid") == 0
    (latency,) = points(snapshot, "syscall.duration", syscall__name="getppid")
    assert latency.value.count == 1234
    # In seconds: a getppid() is measured, and not in µs or ns (a unit mix-up
    # would be off by 10^3 or more); how fast the machine is is not the test's.
    assert 0 < latency.value.sum < 1234 * 0.1
    (calls,) = points(snapshot, "syscall.calls", syscall__name="getppid")
    assert dict(calls.attributes) == {"syscall.name": "getppid"}   # no error.type


@pytest.mark.bpf
def test_pid_filter_counts_that_process_only(bpf_available):
    from ig_metrics.bpf.filters import ProcessFilter

    counted = NamedProcess("igm-sys-pid", CALLS, "321", "4")
    other = NamedProcess("igm-sys-pid", CALLS, "111", "1")      # same name, other pid
    program, sampler = attach_syscalls(ProcessFilter(pids=(counted.pid,)))
    try:
        counted.run()
        other.run()
        snapshot = sampler.tick()
    finally:
        program.close()
        counted.kill()
        other.kill()
    assert total(snapshot, "syscall.calls", syscall__name="getppid") == 321
    assert total(snapshot, "syscall.errors", syscall__name="close", error__type="EBADF") == 4


@pytest.mark.bpf
def test_series_from_arrays_never_expire(bpf_available):
    """Counts by syscall live in arrays, whose entries cannot be removed: an
    idle syscall stays in the export with its cumulative count and start."""
    from ig_metrics.bpf.filters import ProcessFilter

    workload = NamedProcess("igm-sys-idle", CALLS, "50", "0")
    program, sampler = attach_syscalls(ProcessFilter(comm="igm-sys-idle"), idle_expiry=0.2)
    try:
        workload.run()
        first = sampler.tick()
        time.sleep(0.5)
        sampler.tick()
        later = sampler.tick()
    finally:
        program.close()
        workload.kill()
    (before,) = points(first, "syscall.calls", syscall__name="getppid")
    (after,) = points(later, "syscall.calls", syscall__name="getppid")
    assert before.value == after.value == 50
    assert before.start_time_ns == after.start_time_ns


@pytest.mark.bpf
def test_a_gadget_of_arrays_only_is_keyed_by_the_index(bpf_available):
    """A gadget whose every source is an array has the index as its whole
    series key; indexes that counted nothing are no series."""
    import os
    from pathlib import Path

    from ig_metrics.bpf.loader import GadgetProgram
    from ig_metrics.gadgets import resolve
    from ig_metrics.pipeline.sampler import Sampler

    spec = resolve(str(Path(__file__).parent / "gadgets" / "arrayprobe"))
    program = GadgetProgram(spec, cflags=(f"-DTARGET_PID={os.getpid()}",))
    program.load()
    program.attach()
    try:
        sampler = Sampler(spec, program, resource=(), idle_expiry=0)
        for argument, times in ((3, 5), (7, 2)):
            for _ in range(times):
                try:
                    os.getpgid(argument)
                except ProcessLookupError:
                    pass               # only the call's argument matters
        snapshot = sampler.tick()
    finally:
        program.close()
    assert {dict(point.attributes)["probe.argument"]: point.value
            for point in points(snapshot, "probe.calls")} == {3: 5, 7: 2}


def test_describe_shows_every_metric_with_its_attributes_and_bounds():
    import json

    from typer.testing import CliRunner

    from ig_metrics.cli import app

    data = json.loads(CliRunner().invoke(app, ["gadgets", "describe", "syscalls", "-o",
                                               "json"]).output)
    metrics = {metric["name"]: metric for metric in data["metrics"]}
    assert {name: metric["attributes"] for name, metric in metrics.items()} == {
        "syscall.calls": ["syscall.name", *CONTAINER_ATTRIBUTES],
        "syscall.errors": ["syscall.name", "error.type", *CONTAINER_ATTRIBUTES],
        "syscall.duration": ["syscall.name", *CONTAINER_ATTRIBUTES],
    }
    bounds = metrics["syscall.duration"]["bounds"]
    assert bounds[:3] == [0.0, 1e-09, 3e-09] and bounds[-1] == (2 ** 35 - 1) / 1e9


@pytest.mark.bpf
def test_per_cgroup_keeps_a_containers_calls_apart_with_its_container(bpf_available):
    """--param per_cgroup=true: the same command in a kubelet-named container
    and on the host, counted apart, exactly, the container's series carrying
    its container.id and k8s.pod.uid."""
    from ig_metrics.bpf.filters import ProcessFilter
    from ig_metrics.k8s.attribution import start_attribution
    from tests.kubelet_cgroups import make_kubelet_container

    container = make_kubelet_container()
    inside = NamedProcess("igm-sys-cg", CALLS, "321", "7")
    outside = NamedProcess("igm-sys-cg", CALLS, "123", "0")
    attribution = start_attribution(environ={})
    program = None
    try:
        container.procs.write_text(str(inside.pid))
        program, sampler = attach_syscalls(ProcessFilter(comm="igm-sys-cg"),
                                           arguments=["per_cgroup=true"],
                                           attribution=attribution)
        inside.run()
        outside.run()
        snapshot = sampler.tick()
    finally:
        if program is not None:
            program.close()
        attribution.close()
        inside.kill()
        outside.kill()
        container.remove()
    ours = {"container.id": container.container_id, "k8s.pod.uid": container.pod_uid}
    assert total(snapshot, "syscall.calls", syscall__name="getppid",
                 container__id=container.container_id) == 321
    assert total(snapshot, "syscall.calls", syscall__name="getppid") == 321 + 123
    assert total(snapshot, "syscall.errors", syscall__name="close", error__type="EBADF",
                 k8s__pod__uid=container.pod_uid) == 7
    (latency,) = points(snapshot, "syscall.duration", syscall__name="getppid",
                        container__id=container.container_id)
    assert latency.value.count == 321
    assert ours.items() <= dict(latency.attributes).items()
    host = [point for point in points(snapshot, "syscall.calls", syscall__name="getppid")
            if "container.id" not in dict(point.attributes)]
    assert [point.value for point in host] == [123]
