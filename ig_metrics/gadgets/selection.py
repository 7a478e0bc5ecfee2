"""The gadgets of one run, from what the command line or a profile names:
`-g tcp -g dns`, `-g tcp,dns`, built-in names and gadget folders mixed. Each
is resolved, duplicates and metric names two gadgets share are refused, and
`--param` values go to the gadget they name (`file.path_prefix=/etc`), or to
the only gadget with a parameter of that name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ig_metrics.config.suggest import did_you_mean
from ig_metrics.gadgets import GadgetSpec, GadgetSpecError, UnknownGadget, resolve
from ig_metrics.gadgets.parameters import ParameterError


class SelectionError(ValueError):
    """Gadgets that cannot run together; one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def split_names(values: Iterable[str]) -> list[str]:
    """Each --gadget value, split at commas: `-g tcp,dns -g exec` names three."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def select_gadgets(names: Sequence[str], assignments: Sequence[str] = ()) -> list[GadgetSpec]:
    """The specs of `names`, in order, with their --param values; raises
    SelectionError naming every problem found (unknown names with a
    suggestion, a gadget twice, a metric defined by two gadgets, parameters)."""
    problems: list[str] = []
    specs: list[GadgetSpec] = []
    for name in names:
        try:
            specs.append(resolve(name))
        except (UnknownGadget, GadgetSpecError) as error:
            problems.append(str(error))
    seen: dict[str, str] = {}
    for spec, name in zip(specs, names):
        if spec.name in seen:
            problems.append(f"--gadget: gadget {spec.name} is named twice "
                            f"('{seen[spec.name]}' and '{name}')")
        seen.setdefault(spec.name, name)
    owners: dict[str, str] = {}
    for spec in specs:
        for metric in spec.metrics:
            if metric.name in owners and owners[metric.name] != spec.name:
                problems.append(f"--gadget: gadgets {owners[metric.name]} and {spec.name} both "
                                f"define metric {metric.name}: run them apart")
            owners.setdefault(metric.name, spec.name)
    if problems:
        raise SelectionError(problems)
    try:
        return _with_parameters(specs, assignments)
    except ParameterError as error:
        raise SelectionError([str(error)]) from error


def _with_parameters(specs: list[GadgetSpec], assignments: Sequence[str]) -> list[GadgetSpec]:
    if len(specs) == 1:
        # One gadget: a parameter may still be written with its gadget's name.
        prefix = f"{specs[0].name}."
        return [specs[0].with_arguments([a.removeprefix(prefix) for a in assignments])]
    by_gadget: dict[str, list[str]] = {spec.name: [] for spec in specs}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise ParameterError(f"--param: '{assignment}' should be [GADGET.]NAME=VALUE")
        gadget, dot, parameter = name.partition(".")
        if dot and gadget in by_gadget:
            by_gadget[gadget].append(f"{parameter}={value}")
            continue
        having = [spec.name for spec in specs
                  if any(p.name == name for p in spec.parameters)]
        if len(having) == 1:
            by_gadget[having[0]].append(assignment)
        elif having:
            raise ParameterError(f"--param {name}: gadgets {' and '.join(having)} both have "
                                 f"it; write {' or '.join(f'{g}.{name}={value}' for g in having)}")
        else:
            known = [f"{spec.name}.{p.name}" for spec in specs for p in spec.parameters]
            raise ParameterError(f"--param {name}: no gadget of this run has it"
                                 f"{did_you_mean(name, known)}; parameters: "
                                 f"{', '.join(known) or 'none'}")
    return [spec.with_arguments(by_gadget[spec.name]) for spec in specs]
