"""deltann's environment strings, parsed in one place for every Python tool and worker.

    framework[@qualifier][:key=value[,key=value...]]

docs/ENVIRONMENTS.md is the grammar; src/core/environment.cpp is its C++ twin, which validates
and canonicalises what users type. The Python side only ever receives strings the campaign has
already resolved (`tvm:opt=3,device=cpu,threads=1`, `tflite@onnx>tflite:opt=xnnpack,...`), so
nothing here fills in defaults; it splits them, names what is malformed, and answers the
questions the tools ask: a knob's value, a conversion chain's formats, the members of a set knob
(`disable=FuseOps+FoldConstant`).

Knob values may contain ':' (device=cuda:0); the framework and the qualifier never do, so the knobs
start after the first ':'. Only the standard library is used: the TensorFlow venv's worker and
converter import this module too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# The arrows that join the formats of a conversion chain (`pytorch>onnx>tflite`).
CHAIN_ARROWS = (">", "→")
# A qualifier made of digits and dots names an engine version (`tvm@0.19`).
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")


class EnvironmentStringError(ValueError):
    """A malformed environment string, knob list or chain; the message names it and says why."""


@dataclass(frozen=True)
class Environment:
    """A resolved environment string split into its parts."""

    text: str
    framework: str
    qualifier: str = ""
    knobs: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The engine version the qualifier names, or "" when it names none."""
        return self.qualifier if _VERSION.fullmatch(self.qualifier) else ""

    @property
    def chain(self) -> list[str]:
        """The formats of the qualifier's conversion chain, or [] when it is not one."""
        if not self.qualifier or self.version:
            return []
        return parse_chain(self.qualifier)

    def knob(self, name: str) -> str:
        """The value of knob `name`; an error naming the environment when it has none."""
        if name not in self.knobs:
            raise EnvironmentStringError(f"environment '{self.text}' has no '{name}' knob")
        return self.knobs[name]

    def positive_int(self, name: str) -> int:
        """Knob `name` as a positive integer (`threads=4`)."""
        value = self.knob(name)
        if not value.isdigit() or int(value) < 1:
            raise EnvironmentStringError(
                f"environment '{self.text}': {name}={value} is not a positive integer")
        return int(value)


def parse_environment(text: object) -> Environment:
    """Splits an environment string into framework, qualifier and knobs."""
    if not isinstance(text, str) or not text:
        raise EnvironmentStringError(f"environment must be a non-empty string, got {text!r}")
    head, _, knob_text = text.partition(":")
    framework, _, qualifier = head.partition("@")
    return Environment(text, framework, qualifier, parse_knobs(knob_text, f"environment '{text}'"))


def parse_knobs(text: str, where: str) -> dict[str, str]:
    """`key=value,key=value` as a dictionary, in order. `where` names the text in errors (an
    environment, a --knobs option). A key may appear once, as in the C++ parser."""
    knobs: dict[str, str] = {}
    for item in filter(None, (text or "").split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise EnvironmentStringError(f"{where}: '{item}' is not key=value")
        if key in knobs:
            raise EnvironmentStringError(f"{where}: knob '{key}' is given twice")
        knobs[key] = value
    return knobs


def parse_chain(text: str) -> list[str]:
    """The formats of a conversion chain, `pytorch>onnx>tflite` or `pytorch→onnx` (at least two;
    spaces around a format are ignored)."""
    joined = text
    for arrow in CHAIN_ARROWS[1:]:
        joined = joined.replace(arrow, CHAIN_ARROWS[0])
    formats = [f.strip() for f in joined.split(CHAIN_ARROWS[0])]
    if len(formats) < 2 or not all(formats):
        raise EnvironmentStringError(
            f"'{text}' is not a conversion chain (formats joined by '>', such as onnx>tflite)")
    return formats


def set_members(value: str | None) -> list[str]:
    """The members of a set knob's value: `A+B` gives [A, B]; `none` (or nothing) gives []. An
    empty member (`A++B`) is kept as "", for the caller's check of the names to refuse."""
    if value is None or value.strip() in ("", "none"):
        return []
    return [member.strip() for member in value.split("+")]
