"""What one run on this host is to do, as the command line gathered and checked
it: the one object `ig-metrics run` hands to app/localrun.py (light: no bcc)."""

from __future__ import annotations

from dataclasses import dataclass

from ig_metrics.bpf.filters import ProcessFilter
from ig_metrics.config.addresses import HostPort
from ig_metrics.config.model import DEFAULT_IDLE_EXPIRY, Profile
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.summary.rows import DEFAULT_TOP


@dataclass(frozen=True)
class RunOptions:
    """One run's choices, gathered and checked by the command line."""

    specs: tuple[GadgetSpec, ...]
    profile: Profile
    sorts: tuple[str, ...]                  # each gadget's sort column, in `specs` order
    process_filter: ProcessFilter = ProcessFilter()
    idle_expiry: float = DEFAULT_IDLE_EXPIRY
    duration: float | None = None           # None: until stopped
    top: int = DEFAULT_TOP                  # rows of the live table
    health_address: HostPort | None = None  # --health-listen
    use_tui: bool = False                   # the live table, else a summary line per interval
