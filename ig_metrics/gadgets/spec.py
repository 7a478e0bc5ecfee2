"""A gadget's metric spec (`gadget.yaml`): what its BPF program counts, where,
and how kernel keys become attributes. Read with line numbers so that a
mistake in a user's gadget is reported as FILE:LINE."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
import re

import yaml

from ig_metrics.gadgets.hooks import HOOK_KINDS
from ig_metrics.config.model import Problem
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import (compose_text, describe_node, line_of,
                                         mapping_entries, scalar_value)
from ig_metrics.gadgets.decoders import DECODERS, EXPANDING
from ig_metrics.gadgets.parameters import (PARAMETER_TYPES, ParameterError, ParameterSpec,
                                           Value, parse_assignments)
from ig_metrics.gadgets.seeders import SEEDERS
from ig_metrics.model.snapshot import COUNTER, GAUGE, HISTOGRAM

SPEC_FILE = "gadget.yaml"
SOURCE_KINDS = ("slots", "counters", "histogram")
METRIC_KINDS = (COUNTER, GAUGE, HISTOGRAM)
# Kernel units a histogram may record in: how many make one exported unit
# (dividing, not multiplying by 1e-6, gives the shortest decimal for each bound).
KERNEL_UNITS = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1, "By": 1, "1": 1}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GadgetSpecError(Exception):
    """A gadget spec that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True, slots=True)
class Hook:
    program: str                   # the C function
    kind: str                      # a name in gadgets.hooks.HOOK_KINDS
    target: str                    # "category:event" or the raw tracepoint's name
    when: str = ""                 # a parameter: attached only when it is set (not false, "" or 0)

    @property
    def tracefs_path(self) -> str:
        """Where the hook's event lives under tracefs' events/ directory."""
        if self.kind == "tracepoint":
            return self.target.replace(":", "/", 1)
        return self.target


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    name: str                      # OTel attribute name
    field: str                     # field of the key struct
    decoder: str = "int"
    values: tuple[tuple[int, str], ...] = ()   # for decoder "enum"
    family_field: str = ""                     # for decoders "inet_ip" and "peer_pod"
    # Left out of a series whose value decodes to "" (e.g. error.type of a
    # success), or when the compiled key has no such field (a parameter off).
    optional: bool = False
    part: str = ""                             # an expanding decoder's part ("": its default)
    when: str = ""                 # a parameter: the attribute exists only when it is set

    @property
    def expands(self) -> bool:
        """Whether the decoder yields several attributes (named by `names`)."""
        return self.decoder in EXPANDING

    @property
    def names(self) -> tuple[str, ...]:
        """The attribute names this yields: its own name, or those of its
        decoder's part (a name ending in '*' stands for a prefix)."""
        if not self.expands:
            return (self.name,)
        return EXPANDING[self.decoder].names(self.part)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    map: str
    kind: str                      # slots | counters | histogram
    key_field: str = ""            # slots: the struct field holding the series key
    pid_field: str = ""            # slots: the field that overrides the key's pid
    cgroup_field: str = ""         # slots: the field that overrides the key's cgroup_id
    valid_field: str = ""          # slots: 0 = free, 1 = being filled in
    first_field: str = ""          # slots: consistency check, first == last
    last_field: str = ""
    retired_into: str = ""         # slots: hash map of buried slots, keyed by first_field
    index_field: str = ""          # counters/histogram: an array indexed by this key field


@dataclass(frozen=True, slots=True)
class ValueSpec:
    field: str
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str
    unit: str
    description: str
    values: tuple[ValueSpec, ...] = ()   # counter/gauge: fields summed from the sources
    source: str = ""                     # histogram: the map
    kernel_unit: str = ""                # histogram: unit the kernel records in
    buckets: int = 0                     # histogram: slots exported as bounds
    # The gadget's attributes this metric carries (empty: all of them); series
    # that differ only in the others are summed into one point.
    attributes: tuple[str, ...] = ()

    @property
    def divisor(self) -> int | float:
        return KERNEL_UNITS.get(self.kernel_unit, 1)

    @property
    def bounds(self) -> tuple[float, ...]:
        """Upper-inclusive bounds, exactly the kernel's slots: slot 0 holds 0 and
        slot k holds the integers [2^(k-1), 2^k - 1] (see ig_metrics.h)."""
        return tuple(((1 << slot) - 1) / self.divisor for slot in range(self.buckets))

    @property
    def attribute_extras(self) -> tuple[str, ...]:
        names: list[str] = []
        for value in self.values:
            names.extend(name for name, _ in value.attributes if name not in names)
        return tuple(names)


@dataclass(frozen=True, slots=True)
class SeedSpec:
    map: str
    seeder: str                    # a name in gadgets.seeders.SEEDERS


@dataclass(frozen=True, slots=True)
class TableSpec:
    columns: tuple[str, ...] = ()
    sort: str = ""


@dataclass(frozen=True)
class GadgetSpec:
    name: str
    summary: str
    description: str
    file: Path                     # the gadget.yaml
    program: Path                  # the BPF C source
    hooks: tuple[Hook, ...]
    drops: tuple[str, ...]
    attributes: tuple[AttributeSpec, ...]
    sources: tuple[SourceSpec, ...]
    metrics: tuple[MetricSpec, ...]
    table: TableSpec = field(default_factory=TableSpec)
    seeds: tuple[SeedSpec, ...] = ()
    parameters: tuple[ParameterSpec, ...] = ()
    arguments: tuple[tuple[str, Value], ...] = ()   # parameter values set for a run
    # Why --pid/--comm/--cgroup cannot apply (e.g. packets seen without their
    # process); "" for a gadget that filters in the kernel.
    no_process_filter: str = ""

    def with_arguments(self, assignments: list[str]) -> GadgetSpec:
        """This spec with `--param NAME=VALUE` values; raises ParameterError."""
        return replace(self, arguments=parse_assignments(self.parameters, self.name,
                                                         assignments))

    def argument(self, name: str) -> Value:
        """The value of parameter `name` for this run: as set, else its default."""
        parameter = next(p for p in self.parameters if p.name == name)
        return dict(self.arguments).get(name, parameter.default)

    @property
    def active_hooks(self) -> tuple[Hook, ...]:
        """The hooks a run attaches: those without `when`, or whose parameter is set."""
        return tuple(hook for hook in self.hooks if not hook.when or self.argument(hook.when))

    @property
    def active_attributes(self) -> tuple[AttributeSpec, ...]:
        """The attributes a run decodes: those without `when`, or whose parameter is set."""
        return tuple(attribute for attribute in self.attributes
                     if not attribute.when or self.argument(attribute.when))

    def cflags(self) -> tuple[str, ...]:
        """Every parameter as the C macros the program is compiled with."""
        return tuple(flag for parameter in self.parameters
                     for flag in parameter.cflags(self.argument(parameter.name)))

    @property
    def directory(self) -> Path:
        return self.file.parent

    def metric(self, name: str) -> MetricSpec | None:
        return next((metric for metric in self.metrics if metric.name == name), None)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Every attribute a series may carry: the attributes' own names, those
        expanding decoders yield ('*' ends a prefix), those values add."""
        names = [name for attribute in self.attributes for name in attribute.names]
        names += [name for metric in self.metrics for name in metric.attribute_extras]
        return tuple(dict.fromkeys(names))

    def source(self, map_name: str) -> SourceSpec | None:
        return next((source for source in self.sources if source.map == map_name), None)


def load_spec(path: Path) -> GadgetSpec:
    """Reads and validates a gadget.yaml; raises GadgetSpecError with every problem."""
    reader = _Reader(str(path))
    text = path.read_text(encoding="utf-8")
    root = compose_text(text, reader.error)
    spec = reader.gadget(root, path) if root is not None else None
    if reader.problems or spec is None:
        if not reader.problems:
            reader.error(0, "the file is empty; a gadget spec needs name, program, hooks and metrics")
        raise GadgetSpecError(reader.problems)
    return spec


class _Reader:
    """Walks the YAML nodes of one spec, recording every problem with its line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    # --- generic readers -------------------------------------------------------
    def mapping(self, node: yaml.Node, where: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(line_of(node), f"{where}: expected a mapping, got {describe_node(node)}")
            return None
        entries = mapping_entries(node, self.error)
        for key, entry in entries.items():
            if key not in allowed:
                self.error(entry.line, f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}"
                                       f" (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in entries:
                self.error(line_of(node), f"{where}: missing required key '{key}'")
        return {key: entry for key, entry in entries.items() if key in allowed}

    def text(self, entries: dict, key: str, where: str, default: str = "",
             pattern: re.Pattern | None = None, hint: str = "") -> str:
        entry = entries.get(key)
        if entry is None:
            return default
        value = scalar_value(entry.value) if isinstance(entry.value, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value:
            self.error(line_of(entry.value),
                       f"{where}.{key}: expected text, got {describe_node(entry.value)}")
            return default
        if pattern is not None and not pattern.match(value):
            self.error(line_of(entry.value), f"{where}.{key}: '{value}' is not valid{hint}")
            return default
        return value

    def choice(self, entries: dict, key: str, where: str, choices: tuple[str, ...],
               default: str = "") -> str:
        value = self.text(entries, key, where, default)
        if value and value not in choices:
            self.error(line_of(entries[key].value),
                       f"{where}.{key}: '{value}' is not one of {', '.join(choices)}"
                       f"{did_you_mean(value, choices)}")
            return default
        return value

    def integer(self, entries: dict, key: str, where: str, low: int, high: int) -> int:
        entry = entries.get(key)
        if entry is None:
            return 0
        value = scalar_value(entry.value) if isinstance(entry.value, yaml.ScalarNode) else None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.error(line_of(entry.value),
                       f"{where}.{key}: expected a whole number from {low} to {high}, "
                       f"got {describe_node(entry.value) if not isinstance(value, int) else value}")
            return 0
        return value

    def sequence(self, entries: dict, key: str, where: str) -> list[yaml.Node]:
        entry = entries.get(key)
        if entry is None:
            return []
        if not isinstance(entry.value, yaml.SequenceNode):
            self.error(line_of(entry.value),
                       f"{where}.{key}: expected a list, got {describe_node(entry.value)}")
            return []
        return list(entry.value.value)

    def strings(self, entries: dict, key: str, where: str) -> tuple[str, ...]:
        out = []
        for node in self.sequence(entries, key, where):
            value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, str):
                self.error(line_of(node), f"{where}.{key}: expected text, got {describe_node(node)}")
                continue
            out.append(value)
        return tuple(out)

    # --- the spec ----------------------------------------------------------------
    def gadget(self, root: yaml.Node, path: Path) -> GadgetSpec | None:
        top = self.mapping(root, "gadget", (
            "name", "summary", "description", "program", "hooks", "drops",
            "attributes", "sources", "metrics", "table", "seed", "parameters",
            "no_process_filter"),
            required=("name", "program", "hooks", "sources", "metrics"))
        if top is None:
            return None
        name = self.text(top, "name", "gadget", pattern=NAME,
                         hint=" (lowercase letters, digits and _)")
        program_name = self.text(top, "program", "gadget")
        program = path.parent / program_name
        if program_name and not program.is_file():
            self.error(line_of(top["program"].value),
                       f"gadget.program: {program} does not exist")
        parameters = tuple(parameter for node in self.sequence(top, "parameters", "gadget")
                           if (parameter := self.parameter(node)) is not None)
        self.check_unique([p.name for p in parameters], top.get("parameters"), "parameter")
        hooks = tuple(hook for node in self.sequence(top, "hooks", "gadget")
                      if (hook := self.hook(node, tuple(p.name for p in parameters))) is not None)
        if "hooks" in top and not hooks and not self.problems:
            self.error(top["hooks"].line, "gadget.hooks: a gadget needs at least one hook")
        attributes = tuple(attribute for node in self.sequence(top, "attributes", "gadget")
                           if (attribute := self.attribute(
                               node, tuple(p.name for p in parameters))) is not None)
        sources = tuple(source for node in self.sequence(top, "sources", "gadget")
                        if (source := self.source(node)) is not None)
        names = tuple(attribute.name for attribute in attributes)
        metrics = tuple(metric for node in self.sequence(top, "metrics", "gadget")
                        if (metric := self.metric(node, sources, names)) is not None)
        self.check_unique([metric.name for metric in metrics], top.get("metrics"), "metric")
        self.check_unique([a.name for a in attributes], top.get("attributes"), "attribute")
        table = self.table(top.get("table"), metrics)
        seeds = tuple(seed for node in self.sequence(top, "seed", "gadget")
                      if (seed := self.seed(node)) is not None)
        return GadgetSpec(
            name=name,
            summary=self.text(top, "summary", "gadget"),
            description=self.text(top, "description", "gadget").strip(),
            file=path,
            program=program,
            hooks=hooks,
            drops=self.strings(top, "drops", "gadget"),
            attributes=attributes,
            sources=sources,
            metrics=metrics,
            table=table,
            seeds=seeds,
            parameters=parameters,
            no_process_filter=self.text(top, "no_process_filter", "gadget"),
        )

    def check_unique(self, names: list[str], entry, what: str) -> None:
        seen = set()
        for name in names:
            if name in seen and entry is not None:
                self.error(entry.line, f"gadget: {what} '{name}' is defined twice")
            seen.add(name)

    def hook(self, node: yaml.Node, parameters: tuple[str, ...] = ()) -> Hook | None:
        where = f"hooks[line {line_of(node)}]"
        entries = self.mapping(node, where, ("program", "when", *HOOK_KINDS),
                               required=("program",))
        if entries is None:
            return None
        program = self.text(entries, "program", where, pattern=C_IDENTIFIER,
                            hint=" (the name of a C function)")
        when = self.text(entries, "when", where)
        if when and when not in parameters:
            self.error(line_of(entries["when"].value),
                       f"{where}.when: '{when}' is not a parameter of this gadget"
                       f"{did_you_mean(when, parameters)}")
        kinds = [kind for kind in HOOK_KINDS if kind in entries]
        if len(kinds) != 1:
            self.error(line_of(node), f"{where}: give exactly one of {', '.join(HOOK_KINDS)}")
            return None
        target = self.text(entries, kinds[0], where)
        if kinds[0] == "tracepoint" and target and ":" not in target:
            self.error(line_of(entries["tracepoint"].value),
                       f"{where}.tracepoint: '{target}' should be 'category:event', "
                       "e.g. 'sock:inet_sock_set_state'")
            return None
        return Hook(program, kinds[0], target, when) if program and target else None

    def attribute(self, node: yaml.Node, parameters: tuple[str, ...] = ()) -> AttributeSpec | None:
        where = f"attributes[line {line_of(node)}]"
        entries = self.mapping(node, where, ("name", "field", "decoder", "values", "family_field",
                                             "optional", "part", "when"),
                               required=("name", "field"))
        if entries is None:
            return None
        decoder = self.choice(entries, "decoder", where, tuple(DECODERS), default="int")
        values: list[tuple[int, str]] = []
        if "values" in entries:
            values_node = entries["values"].value
            for key, entry in (self.mapping(values_node, f"{where}.values",
                                            tuple(str(k) for k in range(256))) or {}).items():
                label = scalar_value(entry.value) if isinstance(entry.value, yaml.ScalarNode) else None
                values.append((int(key), str(label)))
        if decoder == "enum" and not values:
            self.error(line_of(node), f"{where}: decoder 'enum' needs 'values' (number: name)")
        family_field = self.text(entries, "family_field", where)
        if decoder in ("inet_ip", "peer_pod") and not family_field:
            self.error(line_of(node), f"{where}: decoder '{decoder}' needs 'family_field'")
        part = self.text(entries, "part", where)
        parts = tuple(EXPANDING[decoder].parts) if decoder in EXPANDING else ()
        if part and len(parts) < 2:
            self.error(entries["part"].line, f"{where}.part: decoder '{decoder}' has no parts")
            part = ""
        elif part and part not in parts:
            self.error(line_of(entries["part"].value),
                       f"{where}.part: '{part}' is not one of {', '.join(parts)}"
                       f"{did_you_mean(part, parts)}")
            part = ""
        when = self.text(entries, "when", where)
        if when and when not in parameters:
            self.error(line_of(entries["when"].value),
                       f"{where}.when: '{when}' is not a parameter of this gadget"
                       f"{did_you_mean(when, parameters)}")
        return AttributeSpec(self.text(entries, "name", where), self.text(entries, "field", where),
                             decoder, tuple(values), family_field,
                             self.boolean(entries, "optional", where), part, when)

    def source(self, node: yaml.Node) -> SourceSpec | None:
        where = f"sources[line {line_of(node)}]"
        slot_keys = ("key_field", "pid_field", "cgroup_field", "valid_field", "first_field",
                     "last_field", "retired_into")
        entries = self.mapping(node, where, ("map", "kind", "index_field", *slot_keys),
                               required=("map", "kind"))
        if entries is None:
            return None
        kind = self.choice(entries, "kind", where, SOURCE_KINDS)
        values = {key: self.text(entries, key, where, pattern=C_IDENTIFIER)
                  for key in (*slot_keys, "index_field")}
        if kind == "slots" and values["index_field"]:
            self.error(entries["index_field"].line,
                       f"{where}.index_field: only a 'counters' or 'histogram' source has it")
        if kind == "slots":
            for key in ("key_field", "valid_field"):
                if not values[key]:
                    self.error(line_of(node), f"{where}: a 'slots' source needs '{key}'")
        elif kind:
            for key in slot_keys:
                if key in entries:
                    self.error(entries[key].line, f"{where}.{key}: only a 'slots' source has it")
        return SourceSpec(self.text(entries, "map", where, pattern=C_IDENTIFIER), kind, **values)

    def metric(self, node: yaml.Node, sources: tuple[SourceSpec, ...],
               attribute_names: tuple[str, ...] = ()) -> MetricSpec | None:
        where = f"metrics[line {line_of(node)}]"
        entries = self.mapping(node, where, (
            "name", "kind", "unit", "description", "values", "source", "kernel_unit", "buckets",
            "attributes"), required=("name", "kind", "unit", "description"))
        if entries is None:
            return None
        name = self.text(entries, "name", where, pattern=METRIC_NAME,
                         hint=" (dotted lowercase words, e.g. tcp.sent)")
        where = f"metric {name}" if name else where
        kind = self.choice(entries, "kind", where, METRIC_KINDS)
        values = []
        for value_node in self.sequence(entries, "values", where):
            value_entries = self.mapping(value_node, f"{where}.values", ("field", "attributes"),
                                         required=("field",))
            if value_entries is None:
                continue
            attributes = []
            if "attributes" in value_entries:
                for key, entry in (self.mapping(value_entries["attributes"].value,
                                                f"{where}.values.attributes",
                                                tuple(_keys(value_entries["attributes"].value)))
                                   or {}).items():
                    attributes.append((key, str(scalar_value(entry.value))))
            values.append(ValueSpec(self.text(value_entries, "field", where), tuple(attributes)))
        source = self.text(entries, "source", where)
        carried = self.strings(entries, "attributes", where)
        for attribute in carried:
            if attribute not in attribute_names:
                self.error(entries["attributes"].line,
                           f"{where}.attributes: '{attribute}' is not an attribute of this "
                           f"gadget{did_you_mean(attribute, attribute_names)}")
        if kind == HISTOGRAM:
            histogram_maps = [s.map for s in sources if s.kind == "histogram"]
            if source not in histogram_maps:
                line = entries["source"].line if "source" in entries else line_of(node)
                self.error(line, f"{where}: a histogram names its 'source', one of the "
                                 f"histogram sources ({', '.join(histogram_maps) or 'none'})")
            if "kernel_unit" not in entries:
                self.error(line_of(node), f"{where}: a histogram needs 'kernel_unit' "
                                          f"({', '.join(KERNEL_UNITS)})")
            if "buckets" not in entries:
                self.error(line_of(node), f"{where}: a histogram needs 'buckets' (1 to 64)")
        elif kind and not values:
            self.error(line_of(node), f"{where}: a {kind} needs 'values' (the fields it sums)")
        return MetricSpec(
            name=name, kind=kind, unit=self.text(entries, "unit", where),
            description=self.text(entries, "description", where),
            values=tuple(values), source=source,
            kernel_unit=self.choice(entries, "kernel_unit", where, tuple(KERNEL_UNITS)),
            buckets=self.integer(entries, "buckets", where, 1, 64),
            attributes=carried,
        )

    def seed(self, node: yaml.Node) -> SeedSpec | None:
        where = f"seed[line {line_of(node)}]"
        entries = self.mapping(node, where, ("map", "with"), required=("map", "with"))
        if entries is None:
            return None
        seeder = self.choice(entries, "with", where, tuple(SEEDERS))
        map_name = self.text(entries, "map", where, pattern=C_IDENTIFIER)
        return SeedSpec(map_name, seeder) if seeder and map_name else None

    def boolean(self, entries: dict, key: str, where: str) -> bool:
        entry = entries.get(key)
        if entry is None:
            return False
        value = scalar_value(entry.value) if isinstance(entry.value, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.error(line_of(entry.value),
                       f"{where}.{key}: expected true or false, got {describe_node(entry.value)}")
            return False
        return value

    def parameter(self, node: yaml.Node) -> ParameterSpec | None:
        where = f"parameters[line {line_of(node)}]"
        entries = self.mapping(node, where, ("name", "type", "description", "default",
                                             "minimum", "maximum", "max_length"),
                               required=("name", "type", "description", "default"))
        if entries is None:
            return None
        name = self.text(entries, "name", where, pattern=NAME,
                         hint=" (lowercase letters, digits and _: it becomes a C macro)")
        kind = self.choice(entries, "type", where, PARAMETER_TYPES)
        limits = {key: scalar_value(entries[key].value) for key in ("minimum", "maximum")
                  if key in entries and isinstance(entries[key].value, yaml.ScalarNode)}
        for key, entry in entries.items():
            if key in ("minimum", "maximum") and kind != "integer" or \
                    key == "max_length" and kind != "string":
                self.error(entry.line, f"{where}.{key}: a {kind or 'typeless'} parameter "
                                       "has no such limit")
            elif key in limits and (isinstance(limits[key], bool)
                                    or not isinstance(limits[key], int)):
                self.error(line_of(entry.value), f"{where}.{key}: expected a whole number")
                limits.pop(key)
        if not name or not kind:
            return None
        parameter = ParameterSpec(
            name, kind, self.text(entries, "description", where), "",
            minimum=limits.get("minimum"), maximum=limits.get("maximum"),
            max_length=self.integer(entries, "max_length", where, 1, 4096))
        default_node = entries["default"].value if "default" in entries else None
        default = scalar_value(default_node) if isinstance(default_node, yaml.ScalarNode) else None
        if default is None and kind == "string":
            default = ""           # `default:` left empty: the empty string
        try:
            default = parameter.check(default)
        except ParameterError as error:
            self.error(line_of(default_node) if default_node is not None else line_of(node),
                       f"{where}.default: {str(error).split(': ', 1)[1]}")
            return None
        return replace(parameter, default=default)

    def table(self, entry, metrics: tuple[MetricSpec, ...]) -> TableSpec:
        if entry is None:
            return TableSpec(tuple(metric.name for metric in metrics),
                             metrics[0].name if metrics else "")
        entries = self.mapping(entry.value, "table", ("columns", "sort")) or {}
        names = {metric.name for metric in metrics}
        columns = self.strings(entries, "columns", "table")
        for column in columns:
            if column not in names:
                self.error(entries["columns"].line,
                           f"table.columns: '{column}' is not a metric of this gadget"
                           f"{did_you_mean(column, names)}")
        sort = self.text(entries, "sort", "table", default=columns[0] if columns else "")
        if sort and sort not in names and "sort" in entries:   # else columns said it
            self.error(entries["sort"].line, f"table.sort: '{sort}' is not a metric of this gadget")
        return TableSpec(columns, sort)


def _keys(node: yaml.Node) -> list[str]:
    if not isinstance(node, yaml.MappingNode):
        return []
    return [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
