"""A gadget's metric spec (`gadget.yaml`): what its BPF program counts, where,
and how kernel keys become attributes. Read with config/'s table-driven
reader (the one profiles use: same messages, FILE:LINE: field: message); the
tables below are also the JSON Schema of gadgets/schema.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import (
    WORDS,
    Choice,
    FlagKind,
    Kind,
    ListOf,
    Parsed,
    PatternText,
    StringMap,
)
from ig_metrics.config.fields import Field, Section, parse_fields, require_mapping
from ig_metrics.config.model import Problem
from ig_metrics.config.quantities import WholeNumber
from ig_metrics.config.rules import Draft
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import (
    describe_node,
    line_of,
    mapping_entries,
    read_yaml_file,
    scalar_value,
)
from ig_metrics.gadgets.decoders import DECODERS, EXPANDING
from ig_metrics.gadgets.hooks import HOOK_KINDS
from ig_metrics.gadgets.parameters import (
    PARAMETER_TYPES,
    ParameterError,
    ParameterSpec,
    Value,
    parse_assignments,
)
from ig_metrics.gadgets.seeders import SEEDERS
from ig_metrics.model.snapshot import COUNTER, GAUGE, HISTOGRAM

SPEC_FILE = "gadget.yaml"
SOURCE_KINDS = ("slots", "counters", "histogram")
METRIC_KINDS = (COUNTER, GAUGE, HISTOGRAM)
# Kernel units a histogram may record in: how many make one exported unit
# (dividing, not multiplying by 1e-6, gives the shortest decimal for each bound).
KERNEL_UNITS = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1, "By": 1, "1": 1}
NAME = PatternText(r"^[a-z][a-z0-9_]*$", "use lowercase letters, digits and _")
PARAMETER_NAME = PatternText(r"^[a-z][a-z0-9_]*$", "use lowercase letters, digits and _ "
                             "(it becomes a C macro)")
METRIC_NAME = PatternText(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$",
                          "use dotted lowercase words, e.g. tcp.sent")
C_IDENTIFIER = PatternText(r"^[A-Za-z_][A-Za-z0-9_]*$",
                           "use a C identifier (letters, digits and _)")
TRACEPOINT = PatternText(r"^[^:]+:[^:]+$", "it should be 'category:event', "
                         "e.g. 'sock:inet_sock_set_state'")


class GadgetSpecError(Exception):
    """A gadget spec that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True, slots=True)
class Hook:
    program: str                   # the C function
    kind: str                      # a name in gadgets.hooks.HOOK_KINDS
    target: str                    # "category:event", a raw tracepoint's or a function's name
    when: str = ""                 # a parameter: attached only when it is set (not false, "" or 0)
    since: str = ""                # the first Linux version that has the target ("6.3")
    metrics: tuple[str, ...] = ()  # the metrics it counts for (empty: not said)
    # Attached instead where this kernel lacks the target, all together (e.g. a
    # kprobe and a kretprobe on the function the missing tracepoint sits in),
    # and how counting through them differs.
    fallback: tuple[Hook, ...] = ()
    fallback_note: str = ""

    @property
    def tracefs_path(self) -> str:
        """Where the hook's event lives under tracefs' events/ directory."""
        if self.kind == "tracepoint":
            return self.target.replace(":", "/", 1)
        return self.target

    @property
    def label(self) -> str:
        """How people name it: 'tracepoint sock:sock_send_length (Linux 6.3+)'."""
        since = f" (Linux {self.since}+)" if self.since else ""
        return f"{self.kind.replace('_', ' ')} {self.target}{since}"

    @property
    def define(self) -> str:
        """The C macro the loader defines when it attaches this program."""
        return f"IG_HOOK_{self.program.upper()}"


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
    # Kept only where a profile opts in (attributes: {opt_in: [NAME]}): a value
    # per process instance (a pid), which short-lived processes multiply.
    opt_in: bool = False

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

    def metric(self, name: str) -> MetricSpec:
        """The metric of that name; KeyError for one the gadget does not define."""
        found = next((metric for metric in self.metrics if metric.name == name), None)
        if found is None:
            raise KeyError(f"gadget {self.name}: no metric {name}")
        return found

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Every attribute a series may carry: the attributes' own names, those
        expanding decoders yield ('*' ends a prefix), those values add."""
        names = [name for attribute in self.attributes for name in attribute.names]
        names += [name for metric in self.metrics for name in metric.attribute_extras]
        return tuple(dict.fromkeys(names))

    @property
    def opt_in_names(self) -> tuple[str, ...]:
        """The attributes a series carries only where a profile opts in."""
        return tuple(name for attribute in self.attributes if attribute.opt_in
                     for name in attribute.names)

    def source(self, map_name: str) -> SourceSpec | None:
        return next((source for source in self.sources if source.map == map_name), None)


def load_spec(path: Path) -> GadgetSpec:
    """Reads and validates a gadget.yaml; raises GadgetSpecError with every problem."""
    ctx = FileContext(str(path), path.parent, {}, expand_env=False)
    root = read_yaml_file(path, ctx.error)
    if root is None or (isinstance(root, yaml.ScalarNode) and scalar_value(root) is None):
        if not ctx.problems:
            ctx.error(1, "the file is empty; a gadget spec needs name, program, hooks and metrics")
        raise GadgetSpecError(ctx.problems)
    site = Site("gadget")
    entries = require_mapping(root, site, ctx, "a mapping of name, program, hooks, sources "
                                               "and metrics")
    if entries is None:
        raise GadgetSpecError(ctx.problems)
    read = parse_fields(entries, GADGET_FIELDS, site, ctx, "a gadget", line_of(root),
                        use_env=False)
    draft = Draft(site, line_of(root), read.values, read.lines)
    for rule in GADGET_RULES:
        rule(draft, ctx)
    if ctx.error_count:
        raise GadgetSpecError(ctx.problems)
    return _gadget(draft, path)


# --- kinds only a gadget.yaml has ----------------------------------------------------

class EnumValues(Kind):
    """`values:` of an enum attribute: kernel numbers 0..255 -> their names."""

    expected = "a mapping of numbers (0 to 255) to names"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.MappingNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        pairs = []
        for key, entry in mapping_entries(node, ctx.error).items():
            label = scalar_value(entry.value) if isinstance(entry.value, yaml.ScalarNode) else None
            if not key.isdigit() or int(key) > 255:
                ctx.error(entry.line, f"{site.child(key)}: '{key}' is not a number from 0 to 255")
            elif label is None:
                ctx.error(line_of(entry.value), f"{site.child(key)}: expected a name, "
                                                f"got {describe_node(entry.value)}")
            else:
                pairs.append((int(key), str(label)))
        return Parsed(tuple(pairs))

    def schema(self) -> dict:
        return {"type": "object",
                "propertyNames": {"pattern": r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"},
                "additionalProperties": {"type": ["string", "number", "boolean"]}}


class ScalarKind(Kind):
    """A parameter's default: text, a number or a boolean, checked by its type."""

    expected = "text, a whole number or true/false"

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if not isinstance(node, yaml.ScalarNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected}, got {describe_node(node)}")
            return None
        return Parsed(scalar_value(node))

    def schema(self) -> dict:
        return {"type": ["string", "integer", "boolean", "null"]}


# --- rules: checks of more than one key ------------------------------------------------

def _exactly_one_hook_kind(draft: Draft, ctx: FileContext) -> None:
    kinds = [kind for kind in HOOK_KINDS if kind in draft.values]
    if len(kinds) != 1:
        ctx.error(draft.line, f"{draft.site}: give exactly one of {', '.join(HOOK_KINDS)}")


def _fallback_is_explained(draft: Draft, ctx: FileContext) -> None:
    if draft.values.get("fallback") and not draft.values.get("fallback_note"):
        ctx.error(draft.line_of("fallback"), f"{draft.site.child('fallback')}: say in "
                  "'fallback_note' how counting through the fallback differs (or that it does not)")
    elif "fallback_note" in draft.values and not draft.values.get("fallback"):
        ctx.error(draft.line_of("fallback_note"), f"{draft.site.child('fallback_note')}: "
                  "there is no 'fallback' to explain")


def _decoder_needs(draft: Draft, ctx: FileContext) -> None:
    decoder = draft.values["decoder"]
    if decoder == "enum" and not draft.values.get("values"):
        ctx.error(draft.line, f"{draft.site}: decoder 'enum' needs 'values' (number: name)")
    if decoder in ("inet_ip", "peer_pod") and not draft.values.get("family_field"):
        ctx.error(draft.line, f"{draft.site}: decoder '{decoder}' needs 'family_field'")
    part = draft.values.get("part", "")
    parts = tuple(EXPANDING[decoder].parts) if decoder in EXPANDING else ()
    if part and len(parts) < 2:
        ctx.error(draft.line_of("part"), f"{draft.site.child('part')}: decoder '{decoder}' "
                                         "has no parts")
    elif part and part not in parts:
        ctx.error(draft.line_of("part"), f"{draft.site.child('part')}: unknown part '{part}'"
                                         f"{did_you_mean(part, parts) or '.'} "
                                         f"Choose one of: {', '.join(parts)}")


SLOT_KEYS = ("key_field", "pid_field", "cgroup_field", "valid_field", "first_field",
             "last_field", "retired_into")
SLOT_NEEDS = ("key_field", "valid_field")


def _source_keys_fit_its_kind(draft: Draft, ctx: FileContext) -> None:
    if draft.values["kind"] == "slots":
        if "index_field" in draft.values:
            ctx.error(draft.line_of("index_field"), f"{draft.site.child('index_field')}: only "
                                                    "a 'counters' or 'histogram' source has it")
        for key in SLOT_NEEDS:
            if key not in draft.values:
                ctx.error(draft.line, f"{draft.site}: a 'slots' source needs '{key}'")
        return
    for key in SLOT_KEYS:
        if key in draft.values:
            ctx.error(draft.line_of(key), f"{draft.site.child(key)}: only a 'slots' source has it")


def _metric_has_what_its_kind_needs(draft: Draft, ctx: FileContext) -> None:
    kind = draft.values["kind"]
    if kind == HISTOGRAM:
        for key, what in (("source", "one of the histogram sources"),
                          ("kernel_unit", ", ".join(KERNEL_UNITS)), ("buckets", "1 to 64")):
            if key not in draft.values:
                ctx.error(draft.line, f"{draft.site}: a histogram needs '{key}' ({what})")
    elif not draft.values.get("values"):
        ctx.error(draft.line, f"{draft.site}: a {kind} needs 'values' (the fields it sums)")


def _parameter_limits_fit_its_type(draft: Draft, ctx: FileContext) -> None:
    kind = draft.values["type"]
    for key in ("minimum", "maximum", "max_length"):
        if key in draft.values and kind != ("string" if key == "max_length" else "integer"):
            ctx.error(draft.line_of(key), f"{draft.site.child(key)}: a {kind} parameter has "
                                          "no such limit")
    default = draft.values["default"]
    if default is None and kind == "string":
        default = ""                 # `default:` left empty: the empty string
    try:
        draft.values["default"] = _parameter(draft, default).check(default)
    except ParameterError as error:
        ctx.error(draft.line_of("default"),
                  f"{draft.site.child('default')}: {str(error).split(': ', 1)[1]}")


def _unique(drafts: tuple[Draft, ...], what: str, ctx: FileContext) -> None:
    seen: set[str | None] = set()
    for draft in drafts:
        name = draft.values.get("name")
        if name in seen:
            ctx.error(draft.line_of("name"), f"{draft.site.child('name')}: {what} '{name}' "
                                             "is defined twice")
        seen.add(name)


def _names_are_unique(draft: Draft, ctx: FileContext) -> None:
    for key, what in (("parameters", "parameter"), ("attributes", "attribute"),
                      ("metrics", "metric")):
        _unique(draft.values.get(key, ()), what, ctx)


def _program_exists(draft: Draft, ctx: FileContext) -> None:
    if "program" in draft.values and not (ctx.base_dir / draft.values["program"]).is_file():
        ctx.error(draft.line_of("program"), f"{draft.site.child('program')}: "
                  f"{ctx.base_dir / draft.values['program']} does not exist")


def _has_a_hook(draft: Draft, ctx: FileContext) -> None:
    if "hooks" in draft.values and not draft.values["hooks"] and not ctx.error_count:
        ctx.error(draft.line_of("hooks"), f"{draft.site.child('hooks')}: a gadget needs at "
                                          "least one hook")


def _refers_to(draft: Draft, key: str, names, what: str, ctx: FileContext) -> None:
    """`key` of `draft` (text or a list of it) names one of `names`."""
    written = draft.values.get(key, ())
    for name in (written,) if isinstance(written, str) else written:
        if name not in names:
            ctx.error(draft.line_of(key), f"{draft.site.child(key)}: '{name}' is not {what} "
                                          f"of this gadget{did_you_mean(name, names)}")


def _references_exist(draft: Draft, ctx: FileContext) -> None:
    parameters = [p.values.get("name") for p in draft.values.get("parameters", ())]
    attributes = [a.values.get("name") for a in draft.values.get("attributes", ())]
    metrics = [m.values.get("name") for m in draft.values.get("metrics", ())]
    histograms = [source.map for source in draft.values.get("sources", ())
                  if source.kind == "histogram"]
    for item in (*draft.values.get("hooks", ()), *draft.values.get("attributes", ())):
        _refers_to(item, "when", parameters, "a parameter", ctx)
    for hook in draft.values.get("hooks", ()):
        _refers_to(hook, "metrics", metrics, "a metric", ctx)
    for metric in draft.values.get("metrics", ()):
        _refers_to(metric, "attributes", attributes, "an attribute", ctx)
        if metric.values.get("kind") == HISTOGRAM and "source" in metric.values:
            _refers_to(metric, "source", histograms, "a histogram source", ctx)
    if "table" in draft.values:
        _refers_to(draft.values["table"], "columns", metrics, "a metric", ctx)
        _refers_to(draft.values["table"], "sort", metrics, "a metric", ctx)


GADGET_RULES = (_program_exists, _has_a_hook, _names_are_unique, _references_exist)


# --- the tables: what each mapping of a gadget.yaml may hold ------------------------------

def _when(what: str) -> Field:
    return Field("when", WORDS, f"A parameter of this gadget: the {what} exists only when "
                 "the run sets it (not false, \"\" or 0).", "with_paths")


def _only_with(key: str, value: str, then: dict, otherwise: dict | None = None) -> dict:
    """A JSON Schema constraint: `then` applies where `key` is `value`."""
    rule = {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}
    return {**rule, "else": otherwise} if otherwise is not None else rule


HOOK_TARGETS = (
    Field("program", C_IDENTIFIER, "The C function of the BPF program attached here.",
          "on_exec", required=True),
    Field("tracepoint", TRACEPOINT, "A stable tracepoint, category:event.",
          "sched:sched_process_exec"),
    Field("raw_tracepoint", WORDS, "A raw tracepoint by event name (ctx->args[i] are "
          "its TP_PROTO arguments).", "tcp_send_reset"),
    Field("socket_filter", WORDS, "A socket filter on every interface of the host's "
          "network namespace, named by what it sees.", "all"),
    Field("kprobe", C_IDENTIFIER, "A kernel function's entry (PT_REGS_PARMn(ctx) are its "
          "arguments); not every kernel has kprobes.", "tcp_sendmsg"),
    Field("kretprobe", C_IDENTIFIER, "A kernel function's return (PT_REGS_RC(ctx) is what it "
          "returns).", "tcp_sendmsg"),
)
HOOK_ONE_KIND = ({"oneOf": [{"required": [kind]} for kind in HOOK_KINDS]},)
FALLBACK_HOOK = Section(HOOK_TARGETS, owner="fallback", rules=(_exactly_one_hook_kind,),
                        keep_draft=True, constraints=HOOK_ONE_KIND)
HOOK = Section((
    *HOOK_TARGETS,
    _when("hook"),
    Field("since", PatternText(r"^[0-9]+\.[0-9]+$", "write a Linux version, e.g. '6.3'"),
          "The first Linux version that has the target: said when a kernel lacks it.", "6.3"),
    Field("metrics", ListOf(WORDS, "metric names"), "The metrics this program counts for: "
          "doctor, gadgets describe and the run's log say which hook each one uses.",
          ["tcp.sent"]),
    Field("fallback", ListOf(FALLBACK_HOOK, "hooks"), "Attached instead, all of them, where "
          "the kernel lacks this hook's target. The loader defines IG_HOOK_<PROGRAM> for each "
          "program it attaches, so the C source can leave out a program whose tracepoint "
          "this kernel lacks.",
          [{"program": "on_tcp_sendmsg", "kprobe": "tcp_sendmsg"}]),
    Field("fallback_note", WORDS, "How counts through the fallback differ (docs/gadgets.md).",
          "bytes tcp_sendmsg accepted"),
), owner="hooks", rules=(_exactly_one_hook_kind, _fallback_is_explained), keep_draft=True,
    constraints=HOOK_ONE_KIND)

ATTRIBUTE = Section((
    Field("name", WORDS, "The OpenTelemetry attribute name (for an expanding decoder: "
          "a name for the group).", "process.pid", required=True),
    Field("field", WORDS, "The field of the map's key struct it is decoded from.",
          "pid", required=True),
    Field("decoder", Choice(tuple(DECODERS), noun="decoder"),
          "How the kernel value becomes the attribute: " + ", ".join(DECODERS) + ".",
          "comm", default="int", default_shown="int"),
    Field("values", EnumValues(), "For decoder enum: each number's name.",
          {"0": "unknown", "4": "ipv4"}),
    Field("family_field", C_IDENTIFIER, "For decoders inet_ip and peer_pod: the field "
          "holding the address family (4 or 6).", "family"),
    Field("optional", FlagKind(), "Left out of a series whose value decodes to \"\" or "
          "whose compiled key has no such field.", True, default=False, default_shown=False),
    Field("part", WORDS, "An expanding decoder's part (default: all of it).", "container"),
    _when("attribute"),
    Field("opt_in", FlagKind(), "Kept only where a profile names it in attributes.opt_in "
          "(or in attributes.include): for a value per process instance, such as a pid, "
          "that short-lived processes multiply.", True, default=False, default_shown=False),
), owner="attributes", rules=(_decoder_needs,), keep_draft=True, constraints=(
    _only_with("decoder", "enum", {"required": ["values"]}),
    _only_with("decoder", "inet_ip", {"required": ["family_field"]}),
    _only_with("decoder", "peer_pod", {"required": ["family_field"]}),
))

SOURCE = Section((
    Field("map", C_IDENTIFIER, "The BPF map the counts are read from.", "flows",
          required=True),
    Field("kind", Choice(SOURCE_KINDS, noun="source kind"),
          "slots (an array whose entries carry their own key), counters (a per-CPU hash "
          "or array of counters) or histogram (log2 slots per key).", "counters",
          required=True),
    Field("key_field", C_IDENTIFIER, "slots: the struct field holding the series key.", "key"),
    Field("pid_field", C_IDENTIFIER, "slots: the field that overrides the key's pid.", "owner"),
    Field("cgroup_field", C_IDENTIFIER, "slots: the field that overrides the key's cgroup_id.",
          "owner_cgroup"),
    Field("valid_field", C_IDENTIFIER, "slots: 0 = free, 1 = being filled in.", "sk"),
    Field("first_field", C_IDENTIFIER, "slots: consistency check, first == last.", "id"),
    Field("last_field", C_IDENTIFIER, "slots: the other end of first_field.", "id_end"),
    Field("retired_into", C_IDENTIFIER, "slots: the hash map of buried slots, keyed by "
          "first_field.", "graveyard"),
    Field("index_field", C_IDENTIFIER, "counters/histogram: an array indexed by this key "
          "field.", "cpu"),
), owner="sources", rules=(_source_keys_fit_its_kind,),
    build=lambda draft: SourceSpec(**draft.values), constraints=(
    _only_with("kind", "slots",
               {"required": list(SLOT_NEEDS), "not": {"required": ["index_field"]}},
               {"not": {"anyOf": [{"required": [key]} for key in SLOT_KEYS]}}),
))

VALUE = Section((
    Field("field", WORDS, "The counter field summed into the metric.", "sent", required=True),
    Field("attributes", StringMap(r"^[A-Za-z0-9_.]+$", "attribute names use letters, digits, "
                                  "'.' and '_'", expected="a mapping of attribute names to text"),
          "Attributes its points carry beside the gadget's.", {"network.io.direction": "transmit"}),
), owner="values", build=lambda draft: ValueSpec(draft.values["field"],
                                                 draft.values.get("attributes", ())))

METRIC = Section((
    Field("name", METRIC_NAME, "The metric's OpenTelemetry name.", "tcp.sent", required=True),
    Field("kind", Choice(METRIC_KINDS, noun="metric kind"),
          "counter, gauge or histogram.", "counter", required=True),
    Field("unit", WORDS, "Its UCUM unit (By, s, {connection}).", "By", required=True),
    Field("description", WORDS, "What it counts, in a sentence.", "Bytes sent over TCP.",
          required=True),
    Field("values", ListOf(VALUE, "values"), "counter/gauge: the fields summed from the "
          "sources.", [{"field": "sent"}]),
    Field("source", WORDS, "histogram: its map, one of the histogram sources.",
          "connect_latency"),
    Field("kernel_unit", Choice(tuple(KERNEL_UNITS), noun="kernel unit"),
          "histogram: the unit the kernel records in.", "us"),
    Field("buckets", WholeNumber(1, 64), "histogram: the kernel's log2 slots exported as "
          "bounds.", 27),
    Field("attributes", ListOf(WORDS, "attribute names"), "The gadget's attributes this "
          "metric carries (default: all of them).", ["process.pid"]),
), owner="metrics", rules=(_metric_has_what_its_kind_needs,), keep_draft=True, constraints=(
    _only_with("kind", HISTOGRAM, {"required": ["source", "kernel_unit", "buckets"]},
               {"required": ["values"]}),
))

SEED = Section((
    Field("map", C_IDENTIFIER, "The map filled once the programs are attached.",
          "listeners", required=True),
    Field("with", Choice(tuple(SEEDERS), noun="seeder"), "What fills it: "
          + ", ".join(SEEDERS) + ".", "tcp_listeners", required=True),
), owner="seed", build=lambda draft: SeedSpec(draft.values["map"], draft.values["with"]))

TABLE = Section((
    Field("columns", ListOf(WORDS, "metric names"), "The metrics shown as columns "
          "(counters as rates, histograms as p50/p99).", ["tcp.sent"]),
    Field("sort", WORDS, "The metric the table is sorted by (default: the first column).",
          "tcp.sent"),
), owner="table", keep_draft=True)

PARAMETER = Section((
    Field("name", PARAMETER_NAME, "Its name; --param NAME=VALUE sets it.", "with_paths",
          required=True),
    Field("type", Choice(PARAMETER_TYPES, noun="parameter type"),
          "string, integer or boolean.", "boolean", required=True),
    Field("description", WORDS, "What it changes, in a sentence.", "Count per path.",
          required=True),
    Field("default", ScalarKind(), "Its value when the run does not set it.", False,
          required=True),
    Field("minimum", WholeNumber(), "integer: the smallest value.", 0),
    Field("maximum", WholeNumber(), "integer: the largest value.", 100),
    Field("max_length", WholeNumber(1, 4096), "string: the most bytes.", 64),
), owner="parameters", rules=(_parameter_limits_fit_its_type,), keep_draft=True, constraints=(
    _only_with("type", "integer", {"properties": {"default": {"type": "integer"}}},
               {"not": {"anyOf": [{"required": ["minimum"]}, {"required": ["maximum"]}]}}),
    _only_with("type", "boolean", {"properties": {"default": {"type": "boolean"}}}),
    _only_with("type", "string", {"properties": {"default": {"type": ["string", "null"]}}},
               {"not": {"required": ["max_length"]}}),
))

GADGET_FIELDS = (
    Field("name", NAME, "The gadget's name (run --gadget NAME).", "tcp", required=True),
    Field("summary", WORDS, "What it measures, in a line (gadgets list).",
          "TCP bytes per process and peer"),
    Field("description", WORDS, "What it counts and how, in a paragraph (gadgets describe).",
          "Counts every byte a process sends over TCP."),
    Field("program", WORDS, "The BPF C source, relative to this file.", "tcp.bpf.c",
          required=True),
    Field("hooks", ListOf(HOOK, "hooks"), "Where the programs attach.",
          [{"program": "on_exec", "tracepoint": "sched:sched_process_exec"}], required=True),
    Field("drops", ListOf(WORDS, "names"), "What each index of the program's `drops` "
          "array could not record.", ["flows"]),
    Field("attributes", ListOf(ATTRIBUTE, "attributes"), "How the key struct's fields "
          "become attributes; their order is the series' identity.",
          [{"name": "process.pid", "field": "pid"}]),
    Field("sources", ListOf(SOURCE, "sources"), "The maps counts are read from, in the "
          "order they must be read.", [{"map": "flows", "kind": "counters"}], required=True),
    Field("metrics", ListOf(METRIC, "metrics"), "The metrics exported.",
          [{"name": "exec.count", "kind": "counter", "unit": "{exec}",
            "description": "Execs.", "values": [{"field": "execs"}]}], required=True),
    Field("table", TABLE, "The live table's columns and sort (default: every metric, "
          "sorted by the first).", {"columns": ["tcp.sent"], "sort": "tcp.sent"}),
    Field("seed", ListOf(SEED, "seeds"), "Maps filled once the programs are attached.",
          [{"map": "listeners", "with": "tcp_listeners"}]),
    Field("parameters", ListOf(PARAMETER, "parameters"), "Values a run sets with --param "
          "NAME=VALUE; each reaches the C as a macro.",
          [{"name": "with_paths", "type": "boolean", "default": False,
            "description": "Count per path."}]),
    Field("no_process_filter", WORDS, "Why --pid/--comm/--cgroup cannot apply (e.g. "
          "packets seen without their process).", "packets are seen without their process"),
)
# The whole file, for the schema (load_spec reads the top with GADGET_FIELDS and
# GADGET_RULES itself: its rules run on every item, mistakes or not).
GADGET = Section(GADGET_FIELDS, owner="a gadget")


# --- building the spec from the drafts, once nothing is wrong ----------------------------

def _parameter(draft: Draft, default: Any) -> ParameterSpec:
    values = draft.values
    return ParameterSpec(values["name"], values["type"], values["description"], default,
                         minimum=values.get("minimum"), maximum=values.get("maximum"),
                         max_length=values.get("max_length", 0))


def _hook(values: dict[str, Any]) -> Hook:
    kind = next(kind for kind in HOOK_KINDS if kind in values)
    return Hook(values["program"], kind, values[kind], values.get("when", ""),
                since=values.get("since", ""), metrics=tuple(values.get("metrics", ())),
                fallback=tuple(_hook(item.values) for item in values.get("fallback", ())),
                fallback_note=values.get("fallback_note", "").strip())


def _gadget(draft: Draft, path: Path) -> GadgetSpec:
    values = draft.values
    metrics = tuple(
        MetricSpec(name=m["name"], kind=m["kind"], unit=m["unit"],
                   description=m["description"], values=m.get("values", ()),
                   source=m.get("source", ""), kernel_unit=m.get("kernel_unit", ""),
                   buckets=m.get("buckets", 0), attributes=m.get("attributes", ()))
        for m in (metric.values for metric in values["metrics"]))
    if "table" in values:
        columns = values["table"].values.get("columns", ())
        table = TableSpec(columns, values["table"].values.get(
            "sort", columns[0] if columns else ""))
    else:
        table = TableSpec(tuple(metric.name for metric in metrics),
                          metrics[0].name if metrics else "")
    return GadgetSpec(
        name=values["name"],
        summary=values.get("summary", ""),
        description=values.get("description", "").strip(),
        file=path,
        program=path.parent / values["program"],
        hooks=tuple(_hook(hook.values) for hook in values["hooks"]),
        drops=values.get("drops", ()),
        attributes=tuple(AttributeSpec(a["name"], a["field"], a["decoder"],
                                       a.get("values", ()), a.get("family_field", ""),
                                       a["optional"], a.get("part", ""), a.get("when", ""),
                                       a["opt_in"])
                         for a in (attribute.values for attribute in values.get("attributes", ()))),
        sources=values["sources"],
        metrics=metrics,
        table=table,
        seeds=values.get("seed", ()),
        parameters=tuple(_parameter(p, p.values["default"]) for p in values.get("parameters", ())),
        no_process_filter=values.get("no_process_filter", ""),
    )
