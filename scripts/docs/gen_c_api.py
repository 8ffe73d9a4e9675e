"""The C API reference, generated from a cbindgen header (include/*.h).

The header is the source of truth: cbindgen writes it from hexz-ffi's doc
comments, and scripts/c-tests.sh fails when the checked-in copy is stale.
This turns it into a page: the conventions (the header's opening comment),
every function with its prototype and comment, every type with its fields,
the status codes and the constants. Identifiers in the text link to their
entries. Unknown constructs are an error, not silently dropped, so a header
that grows a new kind of declaration fails the docs build."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple


@dataclass
class Item:
    kind: str  # function, struct, opaque, callback, enum, define, initializer
    name: str
    decl: str
    doc: List[str]
    members: List[Tuple[str, str, List[str]]] = field(default_factory=list)  # (name, type or value, doc)


def _doc_lines(comment: List[str]) -> List[str]:
    return [re.sub(r"^\s*// ?", "", c) for c in comment]


def parse(text: str) -> Tuple[List[str], List[Item]]:
    """(conventions, items) of a cbindgen header."""
    lines = text.splitlines()
    i = 0
    conventions: List[str] = []
    if lines and lines[0].startswith("/*"):
        while not lines[i].rstrip().endswith("*/"):
            i += 1
            conventions.append(re.sub(r"^ \*( |$)", "", lines[i].rstrip()).rstrip("*/").rstrip())
        i += 1
    items: List[Item] = []
    doc: List[str] = []
    guard_seen = False
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            if doc and i + 1 < len(lines) and not lines[i + 1].strip():
                doc = []  # a comment separated from what follows by a blank line documents nothing
            i += 1
            continue
        if s.startswith("//"):
            doc.append(s)
            i += 1
            continue
        if s.startswith("/*"):
            block = [s]
            while not block[-1].endswith("*/"):
                i += 1
                block.append(lines[i].strip())
            text_block = " ".join(block)[2:-2].strip()
            doc = ["// " + text_block]
            i += 1
            continue
        if s.startswith(("#include", "#ifdef", "#ifndef", "#endif", "#else", "}  // extern", "extern \"C\"")) or s in (
            "#endif",
        ):
            if s.startswith("#ifndef") and not guard_seen:
                guard_seen = True
            i += 1
            continue
        if s.startswith("#define"):
            m = re.match(r"#define\s+(\w+)\s*(.*)$", s)
            if not m:
                raise ValueError(f"line {i + 1}: unreadable #define: {s}")
            name, value = m.group(1), m.group(2)
            if value:  # the include guard has none
                kind = "initializer" if name.endswith("_INIT") else "define"
                items.append(Item(kind, name, value, _doc_lines(doc)))
            doc = []
            i += 1
            continue
        if s.startswith("enum "):
            name = s.split()[1]
            members: List[Tuple[str, str, List[str]]] = []
            mdoc: List[str] = []
            while "{" not in lines[i]:
                i += 1
            i += 1
            while not lines[i].strip().startswith("};"):
                ms = lines[i].strip()
                if ms.startswith("//"):
                    mdoc.append(ms)
                elif ms:
                    mm = re.match(r"(\w+)\s*=\s*([^,]+),?$", ms)
                    if not mm:
                        raise ValueError(f"line {i + 1}: unreadable enum member: {ms}")
                    members.append((mm.group(1), mm.group(2).strip(), _doc_lines(mdoc)))
                    mdoc = []
                i += 1
            items.append(Item("enum", name, f"enum {name}", _doc_lines(doc), members))
            doc = []
            i += 1
            continue
        if s.startswith("typedef struct") and s.endswith(";") and "{" not in s:
            m = re.match(r"typedef struct (\w+) (\w+);", s)
            if not m:
                raise ValueError(f"line {i + 1}: unreadable typedef: {s}")
            items.append(Item("opaque", m.group(2), s, _doc_lines(doc)))
            doc = []
            i += 1
            continue
        if s.startswith("typedef struct {"):
            fields: List[Tuple[str, str, List[str]]] = []
            fdoc: List[str] = []
            i += 1
            body = []
            while not lines[i].strip().startswith("}"):
                fs = lines[i].strip()
                body.append("  " + fs)
                if fs.startswith("//"):
                    fdoc.append(fs)
                elif fs:
                    fm = re.match(r"(.+?)\s*\b(\w+)(\[\d+\])?;$", fs)
                    if not fm:
                        raise ValueError(f"line {i + 1}: unreadable field: {fs}")
                    fields.append((fm.group(2), (fm.group(1) + (fm.group(3) or "")).strip(), _doc_lines(fdoc)))
                    fdoc = []
                i += 1
            name = lines[i].strip().strip("}; ")
            decl = "typedef struct {\n" + "\n".join(b for b in body if not b.strip().startswith("//")) + "\n} " + name + ";"
            items.append(Item("struct", name, decl, _doc_lines(doc), fields))
            doc = []
            i += 1
            continue
        if s.startswith("typedef uint32_t hexz_status;"):
            i += 1
            continue
        if s.startswith("typedef") and "(*" in s:
            m = re.search(r"\(\*(\w+)\)", s)
            assert m
            items.append(Item("callback", m.group(1), s, _doc_lines(doc)))
            doc = []
            i += 1
            continue
        # A function prototype, possibly over several lines.
        proto = [s]
        while not proto[-1].endswith(");"):
            i += 1
            if i == len(lines):
                raise ValueError(f"unreadable declaration: {s}")
            proto.append(lines[i].strip())
        decl = " ".join(proto)
        m = re.match(r"(.+?)\b(\w+)\((.*)\);$", decl)
        if not m:
            raise ValueError(f"line {i + 1}: unreadable declaration: {decl}")
        items.append(Item("function", m.group(2), decl, _doc_lines(doc)))
        doc = []
        i += 1
    return conventions, items


def _paragraphs(doc: List[str]) -> List[str]:
    out: List[str] = []
    cur: List[str] = []
    for line in doc + [""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    return out


class Linker:
    """Wraps the header's identifiers in code spans, linking those that have
    an entry on the page."""

    def __init__(self, anchors: dict):
        self.anchors = anchors

    def __call__(self, text: str, skip: Optional[str] = None) -> str:
        parts = re.split(r"(`[^`]*`)", text)
        for k, part in enumerate(parts):
            if part.startswith("`"):
                name = part.strip("`")
                if name in self.anchors and name != skip:
                    parts[k] = f"[{part}](#{self.anchors[name]})"
                continue

            def link(m: "re.Match[str]") -> str:
                name = m.group(0)
                if name in self.anchors and name != skip:
                    return f"[`{name}`](#{self.anchors[name]})"
                return f"`{name}`"

            part = re.sub(r"\b(?:hexz|HEXZ)_\w+\b", link, part)
            # A bare * or _ would start emphasis in Markdown.
            part = re.sub(r"(?<![`\w])([*_])", r"\\\1", part)
            parts[k] = part
        return "".join(parts)


def _cell(text: str) -> str:
    """Table-cell text: a | would end the cell. In code it is written as an
    HTML code element with an entity (an escaped pipe shows its backslash
    there)."""
    def code(m: "re.Match[str]") -> str:
        inner = m.group(1).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "&#124;")
        return f"<code>{inner}</code>"

    parts = re.split(r"(`[^`]*\|[^`]*`)", text)
    return "".join(code(re.match(r"`(.*)`", p, re.S)) if p.startswith("`") and "|" in p else p.replace("|", "\\|")  # type: ignore[arg-type]
                   for p in parts)


def render(header: Path, repo_path: str) -> str:
    conventions, items = parse(header.read_text())
    # Anchors: a heading per function and type (its name); a status code,
    # a constant or an initializer links to its table.
    anchors = {}
    for it in items:
        if it.kind == "define":
            anchors[it.name] = "constants"
        elif it.kind == "initializer":
            anchors[it.name] = "struct-initializers"
        else:
            anchors[it.name] = it.name.lower()
        if it.kind == "enum":
            for name, _, _ in it.members:
                anchors[name] = it.name.lower()
    link = Linker(anchors)
    out: List[str] = []
    w = out.append
    w(f"Generated from [`{repo_path}`](../../{repo_path}) when the site is built; the header itself is")
    w("generated by cbindgen from `hexz-ffi` and checked for staleness by `scripts/c-tests.sh`.\n")
    w("## Conventions\n")
    w("From the header's opening comment; they hold for every function.\n")
    for line in conventions:
        if line.startswith(("Conventions", "Generated by cbindgen")):
            continue
        if line.startswith("- "):
            w("\n" + link(line))
        elif line.startswith("  ") and out:
            out[-1] += " " + link(line.strip())
        elif line.strip():
            w(link(line))
    w("")
    funcs = [it for it in items if it.kind == "function"]
    w("## Functions\n")
    w("| function | what it does |\n| --- | --- |")
    for it in funcs:
        first = _paragraphs(it.doc)[0] if it.doc else ""
        first = re.split(r"(?<=\.)\s(?=[A-Z])", first, maxsplit=1)[0]
        w(f"| [`{it.name}`](#{anchors[it.name]}) | {_cell(link(first, skip=it.name))} |")
    w("")
    for it in funcs:
        w(f"### {it.name}\n")
        w("```c\n" + it.decl + "\n```\n")
        for p in _paragraphs(it.doc):
            if p.startswith("Statuses:"):
                w("**Statuses:** " + link(p[len("Statuses:"):].strip(), skip=it.name) + "\n")
            else:
                w(link(p, skip=it.name) + "\n")
    w("## Types\n")
    for it in items:
        if it.kind not in ("struct", "opaque", "callback"):
            continue
        w(f"### {it.name}\n")
        for p in _paragraphs(it.doc):
            w(link(p, skip=it.name) + "\n")
        w("```c\n" + it.decl + "\n```\n")
        if it.members:
            w("| field | type | meaning |\n| --- | --- | --- |")
            for name, ctype, doc in it.members:
                text = " ".join(_paragraphs(doc))
                w(f"| `{name}` | `{ctype}` | {_cell(link(text))} |")
            w("")
    for it in items:
        if it.kind != "enum":
            continue
        w(f"## Status codes (`{it.name}`) {{#{anchors[it.name]}}}\n")
        for p in _paragraphs(it.doc):
            w(link(p) + "\n")
        w("| name | value | meaning |\n| --- | --- | --- |")
        for name, value, doc in it.members:
            w(f'| `{name}` | {value} | {_cell(link(" ".join(_paragraphs(doc)), skip=name))} |')
        w("")
    inits = [it for it in items if it.kind == "initializer"]
    if inits:
        w("## Struct initializers\n")
        for p in _paragraphs(inits[0].doc):
            w(link(p) + "\n")
        w("```c\n" + "\n".join(f"#define {it.name} {it.decl}" for it in inits) + "\n```\n")
    w("## Constants\n")
    w("| name | value | meaning |\n| --- | --- | --- |")
    for it in items:
        if it.kind == "define":
            text = " ".join(_paragraphs(it.doc))
            w(f"| `{it.name}` | {_cell(f'`{it.decl}`')} | {_cell(link(text, skip=it.name))} |")
    w("")
    return "\n".join(out)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    print(render(path, f"include/{path.name}"))
