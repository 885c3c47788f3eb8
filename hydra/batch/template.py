"""A prompt template with ``{column}`` fields, checked against the input's columns before anything runs.

``{{`` and ``}}`` are literal braces. A field is a column's name as it is written in the
file's header (spaces allowed); format specs and conversions (``{a:>5}``, ``{a!r}``) are
refused, because a template is text for a model, not a Python format string.
"""
from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import BatchInputError

MAX_TEMPLATE_CHARS = 20_000


@dataclass(frozen=True)
class Template:
    text: str
    fields: tuple[str, ...]
    _parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        if not isinstance(text, str) or not text.strip():
            raise BatchInputError("the template is empty: write the prompt, with {column} where a row's value goes")
        if len(text) > MAX_TEMPLATE_CHARS:
            raise BatchInputError(f"the template has {len(text):,} characters; at most {MAX_TEMPLATE_CHARS:,}")
        try:
            pieces = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise BatchInputError(f"the template's braces do not pair up ({exc}); write {{{{ and }}}} for a "
                                  "literal brace") from None
        parts: list[tuple[str, str | None]] = []
        fields: list[str] = []
        for literal, name, spec, conversion in pieces:
            if name is not None:
                if not name.strip():
                    raise BatchInputError("the template has an empty field {}: name a column inside the braces")
                if spec or conversion:
                    shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                    raise BatchInputError(f"the template field {shown} has a format: write just {{{name}}}")
                if name not in fields:
                    fields.append(name)
            parts.append((literal, name))
        if not fields:
            raise BatchInputError("the template names no column: put {column} where each row's value goes "
                                  "(every row would otherwise get the same prompt)")
        return cls(text, tuple(fields), tuple(parts))

    def check(self, columns: Sequence[str]) -> None:
        """BatchInputError naming every field that is not a column, and the columns there are."""
        missing = [f for f in self.fields if f not in columns]
        if missing:
            names = ", ".join("{" + m + "}" for m in missing)
            raise BatchInputError(f"the template field{'s' if len(missing) > 1 else ''} {names} "
                                  f"{'are' if len(missing) > 1 else 'is'} not a column of the input; its columns "
                                  f"are: {', '.join(columns) or '(none)'}")

    def render(self, row: Mapping[str, str]) -> str:
        return "".join(literal + (row.get(name, "") if name is not None else "") for literal, name in self._parts)
