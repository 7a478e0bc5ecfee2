"""Kernel keys to series attributes: each key field through its decoder (one
value, or several for an expanding decoder such as cgroup), the run's
attribute selection applied, each metric's own attribute list kept. Also says
what an answer may still change with (a cgroup not walked yet, a pod not in
the cache yet), so that the sampler can decode that key again later."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from ig_metrics.config.model import DEFAULT_ATTRIBUTES, AttributeSelection
from ig_metrics.gadgets.decoders import DECODERS
from ig_metrics.gadgets.spec import GadgetSpec
from ig_metrics.k8s.attribution import Attribution, Token
from ig_metrics.model.snapshot import Attributes, AttrValue

COMMAND_CACHE_LIMIT = 65536


@dataclass(frozen=True, slots=True)
class Decoded:
    """A key's attributes, per metric of the spec (in its order), and what
    they wait on."""

    by_metric: tuple[Attributes, ...]
    waits: frozenset[Token] = frozenset()


class KeyDecoder:
    """Decodes the keys of one loaded gadget; also the DecodeContext its
    decoders ask. Not thread-safe: the sampler's tick calls it."""

    def __init__(self, spec: GadgetSpec, key_type, program, *,
                 attribution: Attribution | None = None,
                 selection: AttributeSelection = DEFAULT_ATTRIBUTES) -> None:
        self.spec = spec
        self.key_type = key_type
        self.program = program
        self.attribution = attribution
        self.selection = selection
        self._fields = tuple(name for name, _ in key_type._fields_)
        self._kept: dict[tuple[str, bool], bool] = {}
        # The attributes the compiled key can give (an optional one may lack
        # its field, and one with `when` its parameter: a parameter left them
        # out), with their decoders; one the selection drops is not decoded.
        active = spec.active_attributes
        self._attributes = tuple(
            (index, attribute, DECODERS[attribute.decoder], attribute.expands)
            for index, attribute in enumerate(spec.attributes)
            if attribute.field in self._fields and attribute in active
            and (attribute.expands or self.keeps(attribute.name, attribute.opt_in)))
        # Per metric: which of the spec's attributes its points carry.
        self._carried = tuple(
            frozenset(index for index, attribute in enumerate(spec.attributes)
                      if not metric.attributes or attribute.name in metric.attributes)
            for metric in spec.metrics)
        # Per metric, per value: the attributes the value adds, selected.
        self.extras: tuple[tuple[Attributes, ...], ...] = tuple(
            tuple(tuple(item for item in value.attributes if self.keeps(item[0]))
                  for value in metric.values)
            for metric in spec.metrics)
        self._commands: dict[int, str] = {}
        self._waits: list[Token] = []

    def keeps(self, name: str, opt_in: bool = False) -> bool:
        """Whether the run's attribute selection keeps attribute `name` (of an
        attribute the gadget marks `opt_in`)."""
        kept = self._kept.get((name, opt_in))
        if kept is None:
            kept = self._kept[name, opt_in] = self.selection.keeps(name, opt_in)
        return kept

    def decode(self, key: bytes) -> Decoded:
        fields = self.key_type.from_buffer_copy(key)
        values = {name: getattr(fields, name) for name in self._fields}
        self._waits = []
        decoded: list[tuple[int, str, AttrValue]] = []
        for index, attribute, decoder, expands in self._attributes:
            # Attributes from an expanding decoder, one AttrValue from the others
            value: Any = decoder(values[attribute.field], values, attribute, self)
            if expands:
                decoded.extend((index, name, item) for name, item in value
                               if self.keeps(name, attribute.opt_in))
            elif not (attribute.optional and value == ""):
                decoded.append((index, attribute.name, value))
        by_metric = []
        made: dict[frozenset[int], Attributes] = {}     # metrics carrying alike share a tuple
        for carried in self._carried:
            attributes = made.get(carried)
            if attributes is None:
                attributes = made[carried] = tuple((name, value) for index, name, value in decoded
                                                   if index in carried)
            by_metric.append(attributes)
        return Decoded(tuple(by_metric), frozenset(self._waits))

    # --- the DecodeContext decoders ask -------------------------------------------
    def command_of(self, pid: int) -> str:
        """Process name as the kernel recorded it when the key was made, else /proc."""
        name = self._commands.get(pid)
        if name is not None:
            return name
        name = self._kernel_command(pid) or _proc_command(pid)
        if len(self._commands) >= COMMAND_CACHE_LIMIT:
            self._commands.clear()
        self._commands[pid] = name
        return name

    def forget_commands(self) -> None:
        """Drop the process names asked so far: once series expired, some of
        their processes are gone and their pids free for new ones, which would
        be given the old names. A burst's thousands of pids and names would
        also stay, spread over the memory the burst took, and keep it
        (docs/performance.md, "Memory after churn"). A new dict: one that grew
        keeps its table when emptied."""
        self._commands = {}

    def _kernel_command(self, pid: int) -> str:
        if not self.program.has_table("comms"):
            return ""
        table = self.program.table("comms")
        try:
            value = table[ctypes.c_uint32(pid)]
        except KeyError:
            return ""
        return bytes(value.comm).split(b"\0", 1)[0].decode("utf-8", "replace")

    def container_attributes(self, cgroup_id: int, part: str) -> Attributes:
        if self.attribution is None:
            return ()
        parts, waits = self.attribution.container(cgroup_id)
        self._waits.extend(waits)
        return parts.select(part)

    def peer_attributes(self, address: str) -> Attributes:
        if self.attribution is None:
            return ()
        attributes, waits = self.attribution.peer(address)
        self._waits.extend(waits)
        return attributes


def _proc_command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""
