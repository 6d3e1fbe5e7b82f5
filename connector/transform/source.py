"""Generated Python source: the names it may use, and turning it into a function.

Generated code never contains a string from a schema or a mapping except as `repr()` of a str
(a literal, whatever its content); every other value reaches it as a name bound here, and every
name is made here, from a fixed prefix and a counter.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["Source", "literal"]

_PREFIX_RE: Final = re.compile(r"[a-z_][a-z0-9_]*")


def literal(text: str) -> str:
    """A Python literal for `text`, safe to place in generated code."""
    if type(text) is not str:
        raise TypeError(f"only str literals are generated (got {type(text).__name__})")
    return repr(text)


class Source:
    """Lines of one generated function body, and the objects its names stand for."""

    def __init__(self, builtins: dict[str, Any]) -> None:
        self.names: dict[str, Any] = dict(builtins)
        self.lines: list[str] = []
        self._count = 0

    def bind(self, prefix: str, value: Any) -> str:
        """A fresh name for `value` in the generated code."""
        if _PREFIX_RE.fullmatch(prefix) is None:
            raise ValueError(f"bad name prefix {prefix!r}")
        self._count += 1
        name = f"{prefix}_{self._count}"
        self.names[name] = value
        return name

    def local(self) -> str:
        """A fresh local variable name."""
        self._count += 1
        return f"v{self._count}"

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def function(self, name: str, params: str) -> Any:
        """The function `def name(params):` with the lines as its body."""
        if _PREFIX_RE.fullmatch(name) is None or _PREFIX_RE.fullmatch(params) is None:
            raise ValueError("bad function or parameter name")
        text = "\n".join([f"def {name}({params}):", *self.lines, ""])
        namespace = dict(self.names)
        # Safe to run: the text is made of literals and names bound here (see the module docstring).
        exec(compile(text, f"<compiled {name}>", "exec"), namespace)
        function = namespace[name]
        function.__source__ = text  # for debugging and tests
        return function
