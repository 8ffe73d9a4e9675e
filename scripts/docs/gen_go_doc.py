"""The Go package reference, generated from `go doc -all` of bindings/go.

`go doc` reads the package source (no cgo build, no libhexz needed), so the
page always shows the exported API and its doc comments as they are. Each
declaration gets a heading (`Open`, `Archive.ReadAt`) so pages can link to it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List

SECTIONS = {"CONSTANTS": "Constants", "VARIABLES": "Variables", "FUNCTIONS": "Functions", "TYPES": "Types"}
DECL = re.compile(r"^(func|type|const|var)\b")


def go_doc(package_dir: Path) -> str:
    out = subprocess.run(["go", "doc", "-all", "."], cwd=package_dir, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"go doc -all in {package_dir} failed: {out.stderr.strip()}")
    return out.stdout


def _doc_text(lines: List[str]) -> List[str]:
    """Doc lines (already dedented by 4): paragraphs as text, lines indented
    further as Go code blocks."""
    out: List[str] = []
    para: List[str] = []
    code: List[str] = []

    def flush() -> None:
        if para:
            # Doc comments are plain text: a * or _ would start emphasis.
            out.append(re.sub(r"([*_])", r"\\\1", " ".join(para)) + "\n")
            para.clear()
        if code:
            while code and not code[-1].strip():
                code.pop()
            out.append("```go\n" + "\n".join(code) + "\n```\n")
            code.clear()

    for line in lines:
        if line.startswith(("    ", "\t")):
            if para:
                flush()
            code.append(line[4:] if line.startswith("    ") else line[1:])
        elif not line.strip():
            if code:
                code.append("")
            else:
                flush()
        else:
            if code:
                flush()
            para.append(line.strip())
    flush()
    return out


def _heading(decl: str) -> str:
    m = re.match(r"func \((\w+) \*?(\w+)\) (\w+)", decl)
    if m:
        return f"{m.group(2)}.{m.group(3)}"
    m = re.match(r"(?:func|type) (\w+)", decl)
    if m:
        return m.group(1)
    m = re.match(r"(?:const|var) (\w+)", decl)
    return m.group(1) if m else ""


def render(text: str) -> str:
    lines = text.splitlines()
    out: List[str] = []
    i = 0
    # Package clause and package doc.
    header: List[str] = []
    while i < len(lines) and lines[i].strip() not in SECTIONS:
        header.append(lines[i])
        i += 1
    clause = header[0] if header else ""
    out.append(f"`{clause}`\n")
    out.extend(_doc_text([("    " + h[4:]) if h.startswith("    ") else h for h in header[1:]]))
    entries: List[List[str]] = []
    section = ""
    while i < len(lines):
        line = lines[i]
        if line.strip() in SECTIONS and not line.startswith((" ", "\t")):
            section = SECTIONS[line.strip()]
            entries.append([f"## {section}"])
            i += 1
            continue
        if DECL.match(line) and section:
            entries.append([line])
        elif entries and section:
            entries[-1].append(line)
        i += 1
    seen = set()
    for entry in entries:
        if entry[0].startswith("## "):
            out.append(entry[0] + "\n")
            continue
        decl: List[str] = []
        doc: List[str] = []
        for line in entry:
            if doc or (line.startswith("    ") and not line.startswith("\t")):
                doc.append(line[4:] if line.startswith("    ") else line)
            else:
                decl.append(line)
        while decl and not decl[-1].strip():
            decl.pop()
        name = _heading(decl[0])
        title = name
        anchor = name.lower().replace(".", "-") if name else ""
        if anchor in seen or not anchor:
            out.append("```go\n" + "\n".join(decl) + "\n```\n")
        else:
            seen.add(anchor)
            kind = decl[0].split()[0]
            out.append(f"### {kind} {title} {{#{anchor}}}\n")
            out.append("```go\n" + "\n".join(decl) + "\n```\n")
        out.extend(_doc_text(doc))
    return "\n".join(out)


if __name__ == "__main__":
    print(render(go_doc(Path(sys.argv[1]))))
