"""Gadget parameters: values a gadget declares under `parameters:` in its
gadget.yaml and a run sets with `--param NAME=VALUE`. Each is checked against
its declared type and range, then reaches the BPF C as a preprocessor macro."""

from __future__ import annotations

from dataclasses import dataclass

from ig_metrics.config.suggest import did_you_mean

PARAMETER_TYPES = ("string", "integer", "boolean")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")

Value = str | int | bool


class ParameterError(ValueError):
    """A --param the gadget does not declare, or a value its declaration refuses."""


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    name: str                      # lowercase; the C macro is the name in upper case
    type: str                      # string | integer | boolean
    description: str
    default: Value
    minimum: int | None = None     # integer
    maximum: int | None = None     # integer
    max_length: int = 0            # string: bytes, 0 = no limit

    @property
    def macro(self) -> str:
        return self.name.upper()

    def parse(self, text: str) -> Value:
        """The value of `--param NAME=text`; raises ParameterError."""
        where = f"--param {self.name}"
        if self.type == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ParameterError(f"{where}: '{text}' is not true or false")
        if self.type == "integer":
            try:
                value = int(text, 0)
            except ValueError:
                raise ParameterError(f"{where}: '{text}' is not a whole number") from None
            return self.check(value)
        return self.check(text)

    def check(self, value: Value) -> Value:
        """`value` if this parameter accepts it; raises ParameterError."""
        where = f"--param {self.name}"
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(f"{where}: expected a whole number, got {value!r}")
            low = self.minimum if self.minimum is not None else "-inf"
            high = self.maximum if self.maximum is not None else "inf"
            if (self.minimum is not None and value < self.minimum) or \
                    (self.maximum is not None and value > self.maximum):
                raise ParameterError(f"{where}: {value} is outside {low}..{high}")
        elif self.type == "boolean":
            if not isinstance(value, bool):
                raise ParameterError(f"{where}: expected true or false, got {value!r}")
        else:
            if not isinstance(value, str):
                raise ParameterError(f"{where}: expected text, got {value!r}")
            if any(ord(char) < 0x20 or ord(char) == 0x7f for char in value):
                raise ParameterError(f"{where}: control characters are not allowed")
            if self.max_length and len(value.encode()) > self.max_length:
                raise ParameterError(f"{where}: '{value}' is longer than "
                                     f"{self.max_length} bytes")
        return value

    def cflags(self, value: Value) -> tuple[str, ...]:
        """The macros the C source sees: NAME (a string literal for strings,
        1 or 0 for booleans) and, for strings, NAME_LEN (its length in bytes,
        usable in #if)."""
        if self.type == "boolean":
            return (f"-D{self.macro}={int(bool(value))}",)
        if self.type == "integer":
            return (f"-D{self.macro}={int(value)}",)
        text = str(value)
        literal = text.replace("\\", "\\\\").replace('"', '\\"')
        return (f'-D{self.macro}="{literal}"', f"-D{self.macro}_LEN={len(text.encode())}")


def parse_assignments(parameters: tuple[ParameterSpec, ...], gadget: str,
                      assignments: list[str]) -> tuple[tuple[str, Value], ...]:
    """`NAME=VALUE` strings (from --param) as checked values, in declaration order."""
    declared = {parameter.name: parameter for parameter in parameters}
    values: dict[str, Value] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ParameterError(f"--param: '{assignment}' should be NAME=VALUE")
        parameter = declared.get(name)
        if parameter is None:
            known = ", ".join(declared) or "none"
            raise ParameterError(f"--param: gadget {gadget} has no parameter '{name}'"
                                 f"{did_you_mean(name, list(declared))} (its parameters: {known})")
        if name in values:
            raise ParameterError(f"--param {name}: given twice")
        values[name] = parameter.parse(text)
    return tuple((parameter.name, values[parameter.name]) for parameter in parameters
                 if parameter.name in values)
