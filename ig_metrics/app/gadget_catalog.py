"""What a gadget exports, as plain data and as the Markdown of docs/gadgets.md,
both derived from the specs alone."""

from __future__ import annotations

from ig_metrics.exporters.prometheus.naming import prometheus_metric_name
from ig_metrics.gadgets.decoders import EXPANDING
from ig_metrics.gadgets.spec import AttributeSpec, GadgetSpec, Hook, MetricSpec
from ig_metrics.pipeline.selfmetrics import SELF_METRICS

CATALOG_TITLE = "# Gadget catalog"


def carried(spec: GadgetSpec, metric: MetricSpec) -> list[AttributeSpec]:
    """The gadget's attributes that `metric` carries."""
    return [attribute for attribute in spec.attributes
            if not metric.attributes or attribute.name in metric.attributes]


def metric_attributes(spec: GadgetSpec, metric: MetricSpec) -> list[str]:
    """Every attribute name a point of `metric` may carry ('*' ends a prefix)."""
    names = [name for attribute in carried(spec, metric) for name in attribute.names]
    return names + list(metric.attribute_extras)


def optional_attributes(spec: GadgetSpec) -> list[str]:
    """Attributes a series may lack (see AttributeSpec.optional): those of
    expanding decoders are there only where they apply."""
    return [name for attribute in spec.attributes
            if attribute.optional or attribute.expands or attribute.when
            for name in attribute.names]


def describe_parameters(spec: GadgetSpec) -> list[dict]:
    return [{key: value for key, value in (
        ("name", parameter.name), ("type", parameter.type), ("default", parameter.default),
        ("description", parameter.description), ("minimum", parameter.minimum),
        ("maximum", parameter.maximum), ("max_length", parameter.max_length or None))
        if value is not None} for parameter in spec.parameters]


def describe_hook(hook: Hook) -> dict:
    described: dict = {"program": hook.program, "kind": hook.kind, "target": hook.target}
    if hook.since:
        described["since"] = hook.since
    if hook.when:
        described["when"] = hook.when
    described["metrics"] = list(hook.metrics)
    if hook.fallback:
        described["fallback"] = [describe_hook(other) for other in hook.fallback]
        described["fallback_note"] = hook.fallback_note
    return described


def describe(spec: GadgetSpec) -> dict:
    return {
        "name": spec.name,
        "summary": spec.summary,
        "description": spec.description,
        "parameters": describe_parameters(spec),
        "optional_attributes": optional_attributes(spec),
        "opt_in_attributes": list(spec.opt_in_names),
        "hooks": [describe_hook(hook) for hook in spec.hooks],
        "metrics": [{
            "name": metric.name,
            "prometheus": prometheus_metric_name(metric.name, metric.unit, metric.kind),
            "kind": metric.kind,
            "unit": metric.unit,
            "description": metric.description,
            "attributes": metric_attributes(spec, metric),
            **({"bounds": list(metric.bounds)} if metric.bounds else {}),
        } for metric in spec.metrics],
        "drops": list(spec.drops),
    }


def markdown_gadget(spec: GadgetSpec) -> str:
    lines = [f"## {spec.name}", "", spec.summary + ".", ""]
    if spec.description:
        lines += [spec.description, ""]
    optional = set(optional_attributes(spec))
    opt_in = set(spec.opt_in_names)
    lines += ["| metric | Prometheus name | kind | unit | attributes | description |",
              "|---|---|---|---|---|---|"]
    for metric in spec.metrics:
        shown = [f"_{attribute.name}_ (below)" if attribute.expands else
                 f"`{attribute.name}`" + (" (if set)" if attribute.name in optional else "")
                 + (" (opt-in)" if attribute.name in opt_in else "")
                 for attribute in carried(spec, metric)]
        shown += [f"`{name}`" for name in metric.attribute_extras]
        attributes = ", ".join(shown)
        prometheus = prometheus_metric_name(metric.name, metric.unit, metric.kind)
        lines.append(f"| `{metric.name}` | `{prometheus}` | {metric.kind} | `{metric.unit}` | "
                     f"{attributes} | {metric.description} |")
    if opt_in:
        names = ", ".join(f"`{name}`" for name in spec.opt_in_names)
        lines += ["", f"Opt-in ({names}): kept only where the profile names it, "
                      "`attributes: {opt_in: [NAME]}`; without it, series that differ only "
                      "in it are summed, exactly."]
    for attribute in spec.attributes:
        if attribute.expands:
            names = ", ".join(f"`{name}`" for name in attribute.names)
            condition = f"with `{attribute.when}`, " if attribute.when else ""
            lines += ["", f"_{attribute.name}_: {names}; {condition}"
                          f"{EXPANDING[attribute.decoder].when}."]
    histograms = [metric for metric in spec.metrics if metric.bounds]
    for metric in histograms:
        bounds = ", ".join(str(bound) for bound in metric.bounds)
        lines += ["", f"`{metric.name}` buckets (upper bounds in {metric.unit}, exactly the "
                      f"kernel's log2 slots of {metric.kernel_unit}): {bounds}, +Inf."]
    if spec.parameters:
        lines += ["", f"Parameters (`ig-metrics run --gadget {spec.name} --param NAME=VALUE`):",
                  "", "| parameter | type | default | description |", "|---|---|---|---|"]
        for parameter in describe_parameters(spec):
            kind = parameter["type"]
            if "minimum" in parameter or "maximum" in parameter:
                kind += f", {parameter.get('minimum', '')}..{parameter.get('maximum', '')}"
            if "max_length" in parameter:
                kind += f", at most {parameter['max_length']} bytes"
            lines.append(f"| `{parameter['name']}` | {kind} | `{parameter['default']!s}` | "
                         f"{parameter['description']} |")
    hooks = ", ".join(f"`{hook.target}` ({hook.kind.replace('_', ' ')}"
                      + (f", Linux {hook.since}+" if hook.since else "")
                      + (f", with `{hook.when}`" if hook.when else "") + ")"
                      for hook in spec.hooks)
    lines += ["", f"Kernel hooks: {hooks}."]
    for hook in spec.hooks:
        if hook.fallback:
            counted = ", ".join(f"`{metric}`" for metric in hook.metrics) or "its counts"
            instead = " and ".join(f"a {other.kind} on `{other.target}`" for other in hook.fallback)
            lines += ["", f"On a kernel without `{hook.target}`"
                          + (f" (before Linux {hook.since})" if hook.since else "")
                          + f", {counted} come from {instead}: {hook.fallback_note}"]
    lines.append("")
    return "\n".join(lines)


def markdown_self_metrics() -> str:
    """The metrics every run exports about itself, whatever the gadget."""

    lines = ["## Metrics about ig-metrics itself", "",
             "Every run exports these beside its gadget's metrics, through the same "
             "exporters.", "",
             "| metric | Prometheus name | kind | unit | attributes | description |",
             "|---|---|---|---|---|---|"]
    for info, attributes in SELF_METRICS:
        prometheus = prometheus_metric_name(info.name, info.unit, info.kind)
        names = ", ".join(f"`{name}`" for name in attributes) or "–"
        lines.append(f"| `{info.name}` | `{prometheus}` | {info.kind} | `{info.unit}` | "
                     f"{names} | {info.description} |")
    return "\n".join(lines) + "\n"


def markdown_catalog(specs: list[GadgetSpec]) -> str:
    """The whole of docs/gadgets.md."""
    header = [CATALOG_TITLE, "",
              "Generated from each gadget's `gadget.yaml` by "
              "`ig-metrics gadgets describe NAME --output markdown`; "
              "a test fails when this page is stale.", "", ""]
    sections = [markdown_gadget(spec) for spec in specs] + [markdown_self_metrics()]
    return "\n".join(header) + "\n".join(sections)
