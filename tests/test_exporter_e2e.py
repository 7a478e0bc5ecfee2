"""`ig-metrics run` through the installed console script with collectors that
misbehave: SIGTERM still exits within seconds when collectors hang, healthy
exporters still deliver (the final export included), and every exporter
carries the export-quality metrics of all of them."""

from __future__ import annotations

import signal
import time

import pytest

from tests.receivers import HANG, OtlpGrpcReceiver, OtlpHttpReceiver, flatten
from tests.test_run_e2e import our_program_ids, start_run, write_profiles

pytestmark = pytest.mark.bpf



def test_sigterm_with_hung_collectors_exits_within_seconds_after_a_final_flush(tmp_path):
    with OtlpGrpcReceiver(behaviour=HANG) as hung_grpc, \
            OtlpHttpReceiver(behaviour=HANG) as hung_http, OtlpGrpcReceiver() as healthy:
        profiles = write_profiles(tmp_path / "profiles", f"""
exporters:
  hung-grpc: {{type: otlp-grpc, endpoint: "{hung_grpc.endpoint}", insecure: true,
              timeout: 10m}}
  hung-http: {{type: otlp-http, endpoint: "{hung_http.url()}", timeout: 10m}}
  healthy: {{type: otlp-grpc, endpoint: "{healthy.endpoint}", insecure: true}}
profiles:
  e2e: {{exporters: [hung-grpc, hung-http, healthy], interval: 1s}}
""")
        before = our_program_ids()
        run = start_run(profiles, "e2e", "--no-tui")
        try:
            healthy.wait_for(2, timeout=60)
            deadline = time.monotonic() + 30
            while hung_grpc.attempts < 1 or hung_http.attempts < 1:
                assert time.monotonic() < deadline, "the hung collectors were never called"
                time.sleep(0.1)
            delivered_before_stop = len(healthy.received)
            run.send_signal(signal.SIGTERM)
            # Exports of 10 minutes are abandoned, not waited out: the run ends
            # long before this timeout.
            _, err = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 0, err
    assert "export still running at shutdown; it is abandoned" in err
    assert len(healthy.received) > delivered_before_stop       # the final export
    assert our_program_ids() <= before
    # The healthy exporter carries the export metrics of every exporter.
    intervals = {dict(attributes)["otel.component.name"]: value
                 for (metric, attributes), value in flatten(healthy.received).items()
                 if metric == "ig_metrics.export.interval"}
    assert intervals == {"hung-grpc": 1.0, "hung-http": 1.0, "healthy": 1.0}
