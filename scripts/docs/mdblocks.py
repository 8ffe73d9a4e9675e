"""The pieces of a documentation page that tools act on: fenced code blocks
with the `<!-- doctest: ... -->` directives written just above them, and the
`--8<-- "path"` lines that pull a repository file into a block (the
pymdownx.snippets syntax the site build resolves the same way).

Shared by the site build (scripts/docs/hooks.py) and the example runner
(tests/docs/test_docs.py), so both read a page alike."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]

# Languages whose blocks the example runner executes.
RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python", "c": "c", "go": "go"}

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
DIRECTIVE = re.compile(r"^[ \t]*<!--[ \t]*doctest:(?P<body>.*?)(?P<end>-->)?[ \t]*$")
SNIPPET = re.compile(r'^(?P<indent>[ \t]*)--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$')


@dataclass
class Block:
    """One fenced block, with the directives just above it."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str  # the first word of the info string, lowercased
    code: str  # the content, dedented to the fence, snippets resolved
    directives: Dict[str, str] = field(default_factory=dict)
    setup: List[str] = field(default_factory=list)  # hidden shell run just before the block

    @property
    def kind(self) -> Optional[str]:
        """sh, python, c or go for blocks the runner executes, else None."""
        return RUNNABLE.get(self.lang)

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def args(self) -> List[str]:
        return shlex.split(self.directives.get("args", ""))


class PageError(Exception):
    pass


def resolve_snippets(code: str, where: str) -> str:
    """Replace each `--8<-- "path"` line (a path from the repository root)
    with that file's text. A missing file is an error, as in the site build
    (snippets' check_paths)."""
    out = []
    for line in code.splitlines(keepends=True):
        m = SNIPPET.match(line)
        if not m:
            out.append(line)
            continue
        path = ROOT / m.group("path")
        if not path.is_file():
            raise PageError(f"{where}: --8<-- {m.group('path')}: no such file in the repository")
        text = path.read_text()
        out.append(text if text.endswith("\n") else text + "\n")
    return "".join(out)


def parse_directive(body: str) -> Dict[str, str]:
    """`skip REASON...` keeps the rest of the line as the reason; other words
    are `key` or `key=value` (value shell-quoted when it has spaces)."""
    body = body.strip()
    if body.startswith("skip"):
        return {"skip": body[4:].strip(" :") or "(no reason given)"}
    out: Dict[str, str] = {}
    for word in shlex.split(body):
        key, _, value = word.partition("=")
        out[key] = value
    return out


def blocks(page: Path) -> List[Block]:
    """Every fenced block of `page`, in order. Directives (single-line
    comments) and hidden setup (`<!-- doctest: setup` ... `-->`, shell)
    attach to the next fenced block; setup without a block after it is
    an error, as is an unclosed fence."""
    lines = page.read_text().splitlines()
    found: List[Block] = []
    pending: Dict[str, str] = {}
    setup: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        d = DIRECTIVE.match(line)
        if d:
            body = d.group("body")
            if body.strip().startswith("setup"):
                script = [body.strip()[len("setup"):]]
                if not d.group("end"):
                    i += 1
                    while i < len(lines) and "-->" not in lines[i]:
                        script.append(lines[i])
                        i += 1
                    if i == len(lines):
                        raise PageError(f"{page}:{i}: doctest setup comment is not closed with -->")
                    script.append(lines[i].split("-->")[0])
                setup.append("\n".join(script).strip())
            else:
                if not d.group("end"):
                    raise PageError(f"{page}:{i + 1}: a doctest directive must fit on one line (except setup)")
                pending.update(parse_directive(body))
            i += 1
            continue
        m = FENCE.match(line)
        if not m:
            if line.strip() and pending:
                raise PageError(f"{page}:{i + 1}: doctest directive {pending} is not followed by a fenced block")
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        info = m.group("info").strip()
        start = i
        body_lines = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) == {fence[0]}:
                break
            body_lines.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        else:
            raise PageError(f"{page}:{start + 1}: fenced block is not closed")
        lang = info.split()[0].lower() if info else ""
        where = f"{page.relative_to(ROOT)}:{start + 1}"
        code = resolve_snippets("\n".join(body_lines) + "\n", where)
        found.append(Block(page, start + 1, lang, code, pending, setup))
        pending, setup = {}, []
        i += 1
    if pending or setup:
        raise PageError(f"{page}: doctest directives at the end of the page with no block after them")
    return found
