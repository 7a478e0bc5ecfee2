"""Attribute names as a profile's `attributes: {include, exclude, opt_in}` lists
them: read with their lines, and checked against the attributes gadgets have (a
warning when loading, since a gadget of the user's own may have any; an error
once the run's gadget is known)."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from ig_metrics import gadgets
from ig_metrics.config.context import FileContext, Site
from ig_metrics.config.fieldkinds import Kind, Parsed, read_text
from ig_metrics.config.model import AttributeName, AttributeSelection, Problem
from ig_metrics.config.suggest import did_you_mean
from ig_metrics.config.yamlnodes import describe_node, line_of, scalar_value


def is_known(name: str, known: Iterable[str]) -> bool:
    """Whether `name` (or, ending in '*', a prefix) can name one of `known`,
    where a known name ending in '*' stands for its whole prefix."""
    if name.endswith("*"):
        prefix = name[:-1]
        return any(other.startswith(prefix) or
                   (other.endswith("*") and prefix.startswith(other[:-1])) for other in known)
    return any(name == other or (other.endswith("*") and name.startswith(other[:-1]))
               for other in known)


def builtin_attribute_names() -> tuple[str, ...]:
    """Every attribute of every built-in gadget."""
    return gadgets.builtin_attribute_names()


def builtin_opt_in_names() -> tuple[str, ...]:
    """The attributes of built-in gadgets kept only where a profile opts in."""
    return gadgets.builtin_opt_in_names()


def selection_problems(selection: AttributeSelection, known: Iterable[str],
                       where: str, shown: Iterable[str] = ()) -> list[Problem]:
    """An error for each name of `selection` that none of `known` has; `where`
    says which gadget (or gadgets) they were checked against, `shown` the
    names the message lists (default: `known`)."""
    known = tuple(dict.fromkeys(known))
    shown = tuple(dict.fromkeys(shown)) or known
    problems = []
    for key, names in (("include", selection.include), ("exclude", selection.exclude),
                       ("opt_in", selection.opt_in)):
        for name in names:
            if not is_known(name.name, known):
                problems.append(Problem(selection.file, name.line, _unknown(key, name.name,
                                                                            shown, where)))
    return problems


def _unknown(key: str, name: str, shown: tuple[str, ...], where: str) -> str:
    return (f"attributes.{key}: '{name}' is not an attribute of {where}"
            f"{did_you_mean(name, shown) or '.'} Its attributes: {', '.join(shown)}")


class AttributeNamesKind(Kind):
    """A list of attribute names, each once; '*' at the end names a prefix
    unless `prefixes` is off (opt_in: a prefix never opts in)."""

    expected = "a list of attribute names"

    def __init__(self, *, prefixes: bool = True) -> None:
        self.prefixes = prefixes

    def parse(self, node: yaml.Node, site: Site, ctx: FileContext) -> Parsed | None:
        if isinstance(node, yaml.ScalarNode) and scalar_value(node) is None:
            return Parsed(())
        if not isinstance(node, yaml.SequenceNode):
            ctx.error(line_of(node), f"{site}: expected {self.expected} like "
                                     f"[process.pid, container.id], got {describe_node(node)}")
            return None
        errors_before = ctx.error_count
        names: list[AttributeName] = []
        for item in node.value:
            text = read_text(item, site, ctx, "an attribute name")
            if text is None:
                continue
            name = text.text.strip()
            if not name or any(char.isspace() for char in name) or "*" in name[:-1]:
                ctx.error(text.line, f"{site}: {text.quoted()} is not an attribute name "
                                     "(no spaces; '*' only at the end, for a prefix)")
            elif not self.prefixes and name.endswith("*"):
                ctx.error(text.line, f"{site}: {text.quoted()} is a prefix; name each "
                                     "attribute in full (e.g. process.pid)")
            elif any(seen.name == name for seen in names):
                ctx.error(text.line, f"{site}: {text.quoted()} is listed twice")
            else:
                names.append(AttributeName(name, text.line))
        if ctx.error_count > errors_before:
            return None
        known = builtin_attribute_names()
        for attribute in names:
            if not is_known(attribute.name, known):
                ctx.warning(attribute.line, f"{site}: '{attribute.name}' is not an attribute of "
                                            f"any built-in gadget"
                                            f"{did_you_mean(attribute.name, known)} "
                                            "(fine for a gadget of your own that has it)")
        if not self.prefixes:
            self._warn_kept_anyway(names, site, ctx, known)
        return Parsed(tuple(names))

    @staticmethod
    def _warn_kept_anyway(names: list[AttributeName], site: Site, ctx: FileContext,
                          known: tuple[str, ...]) -> None:
        """A built-in attribute that is not opt-in is kept without asking:
        naming it in opt_in is a slip (meant include?)."""
        opt_in = builtin_opt_in_names()
        for name in names:
            if is_known(name.name, known) and name.name not in opt_in:
                ctx.warning(name.line, f"{site}: '{name.name}' is kept without opting in; "
                                       f"opt_in names what series leave out by default: "
                                       f"{', '.join(opt_in)}")

    def schema(self) -> dict:
        pattern = r"^[^\s*]+\*?$" if self.prefixes else r"^[^\s*]+$"
        return {"type": "array", "uniqueItems": True,
                "items": {"type": "string", "pattern": pattern}}
