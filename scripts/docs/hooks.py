"""MkDocs hooks (mkdocs.yml `hooks:`): the generated parts of the site are made
here, at build time, from the code itself, so none of them is checked in and
none can be stale.

Markers a page may hold (HTML comments: invisible where the Markdown is read
on its own, e.g. on GitHub, where the page says where the content comes from):

- `<!-- hexz:cli-commands -->`: the table of `hexz` commands, from `hexz --help`.
- `<!-- hexz:cli-help CMD -->`: `hexz CMD --help` verbatim, and the exit codes.
- `<!-- hexz:c-api include/NAME.h -->`: the C API reference of that header.
- `<!-- hexz:go-doc bindings/go -->`: `go doc -all` of the Go package.
- `<!-- hexz:versions -->`: the version matrix (scripts/docs/gen_versions.py).
- `<!-- hexz:include PATH[#ANCHOR] [level=N] -->`: a Markdown file of the
  repository (PATH relative to the page), or the section under one heading,
  its links rewritten to work from the page, headings shifted so that the
  first is level N.

Every `hexz` subcommand gets a page under reference/cli/: the hand-written
one if docs/reference/cli/CMD.md exists, else a generated one; the nav lists
them all. A hand-written page for a command that no longer exists fails the
build. Links from a page to repository files outside docs/ are checked (a
missing file fails the build) and point at the repository on the site."""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Tuple

from markdown.extensions.toc import slugify
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_c_api  # noqa: E402
import gen_go_doc  # noqa: E402
import gen_versions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^[ \t]*<!--[ \t]*hexz:(?P<name>[\w-]+)(?P<args>[^>]*?)[ \t]*-->[ \t]*$", re.M)
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


# ---- the hexz command's own help --------------------------------------------------------


def hexz_bin() -> Path:
    path = Path(os.environ.get("HEXZ_BIN", ROOT / "target" / "release" / "hexz"))
    if not path.is_file():
        raise PluginError(f"{path}: no hexz binary to take the CLI reference from; "
                          "build it (cargo build --release -p hexz-cli) or run ./scripts/docs.sh")
    return path


@lru_cache(maxsize=None)
def help_text(*args: str) -> str:
    out = subprocess.run([str(hexz_bin()), *args, "--help"], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="100", NO_COLOR="1"))
    if out.returncode != 0:
        raise PluginError(f"hexz {' '.join(args)} --help failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout.rstrip() + "\n"


def commands() -> List[Tuple[str, str]]:
    """(name, one-line description) of every subcommand, from `hexz --help`."""
    text = help_text()
    m = re.search(r"^Commands:\n(.*?)(?:\n\n|\Z)", text, re.M | re.S)
    if not m:
        raise PluginError("hexz --help has no Commands: section")
    out = []
    for line in m.group(1).splitlines():
        cm = re.match(r"^\s+(\S+)\s+(.*)$", line)
        if cm and cm.group(1) != "help":
            out.append((cm.group(1), cm.group(2).strip()))
        elif cm is None and out and line.strip():
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
    return out


def exit_codes() -> str:
    m = re.search(r"^Exit codes:(.*?)(?:\n\n|\Z)", help_text(), re.M | re.S)
    if not m:
        raise PluginError("hexz --help no longer lists its exit codes (after_help 'Exit codes:')")
    return " ".join(m.group(1).split()).rstrip(".")


def _help_sections(text: str) -> Optional[Tuple[str, List[Tuple[str, List[Tuple[str, str]]]]]]:
    """(usage line, [(section, [(item, description)])]) of clap's long help,
    or None when it does not have the shape this expects."""
    usage = re.search(r"^Usage: (.*)$", text, re.M)
    if not usage:
        return None
    sections: List[Tuple[str, List[Tuple[str, str]]]] = []
    for m in re.finditer(r"^(Arguments|Options):\n(.*?)(?=\n\S|\Z)", text, re.M | re.S):
        items: List[Tuple[str, List[str]]] = []
        for line in m.group(2).splitlines():
            if re.match(r"^ {2,6}[-<]", line):
                # The short form has the description on the same line.
                parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
                items.append((parts[0], parts[1:]))
            elif line.strip() and items:
                items[-1][1].append(line.strip())
            elif line.strip():
                return None
        sections.append((m.group(1), [(item, _sentences(desc)) for item, desc in items]))
    return usage.group(1), sections


def _sentences(lines: List[str]) -> str:
    """clap's description lines as one cell: a possible-values list as
    `name`: what; a period between pieces that lack one."""
    pieces: List[str] = []
    for line in lines:
        value = re.match(r"^- (\S+?):\s+(.*)$", line)
        if value:
            pieces.append(f"`{value.group(1)}`: {value.group(2)}")
        elif line != "Possible values:":
            pieces.append(line)
    out = ""
    for piece in pieces:
        if out and not out.endswith((".", ":", ";", "]")):
            out += "."
        out += (" " if out else "") + piece
    return out


def _md_cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    # clap's "[default: X]" and "[possible values: A, B]" as code.
    text = re.sub(r"\[default: ([^\]]*)\]", lambda m: f"Default: `{m.group(1)}`.", text)
    text = re.sub(r"\[possible values: ([^\]]*)\]",
                  lambda m: "One of " + ", ".join(f"`{v.strip()}`" for v in m.group(1).split(",")) + ".", text)
    return text


def cli_help(cmd: str) -> str:
    if cmd not in dict(commands()):
        raise PluginError(f"hexz:cli-help {cmd}: hexz has no such command (hexz --help lists {', '.join(dict(commands()))})")
    about = dict(commands())[cmd]
    text = help_text(cmd)
    parsed = _help_sections(text)
    out = f"{about}\n\n"
    if parsed is None:
        out += f"```text\n$ hexz {cmd} --help\n{text}```\n\n"
    else:
        usage, sections = parsed
        out += f"```text\n{usage}\n```\n\n"
        for title, items in sections:
            out += f"| {title.lower()[:-1] if title.endswith('s') else title} | meaning |\n| --- | --- |\n"
            for item, desc in items:
                out += f"| `{item}` | {_md_cell(desc) or '—'} |\n"
            out += "\n"
        out += f"(From `hexz {cmd} --help`; `-h` gives a summary.)\n\n"
    return out + (f"**Exit codes:** {exit_codes()}; see the [common behaviour](index.md#exit-codes) "
                  "of every command.\n")


def cli_commands() -> str:
    rows = ["| command | what it does |", "| --- | --- |"]
    for name, about in commands():
        rows.append(f"| [`hexz {name}`]({name}.md) | {about} |")
    top = help_text()
    examples = re.search(r"^Examples:\n(.*?)(?:\n\n|\Z)", top, re.M | re.S)
    usage = top.split("\n\nCommands:")[0]
    options = re.search(r"^Options:\n(.*?)(?:\n\n|\Z)", top, re.M | re.S)
    out = "\n".join(rows) + "\n\n```text\n$ hexz --help   # (abridged: usage and options)\n" + usage + "\n\nOptions:\n"
    out += (options.group(1) if options else "") + "\n```\n"
    if examples:
        out += "\nThe examples `hexz --help` prints:\n\n```text\n" + examples.group(1).rstrip() + "\n```\n"
    return out


# ---- includes and links ----------------------------------------------------------------------


def _outside_code(markdown: str):
    """Yield (is_code, chunk) pieces of a page: fenced blocks apart."""
    chunk: List[str] = []
    fence: Optional[str] = None
    for line in markdown.splitlines(keepends=True):
        m = FENCE.match(line)
        if fence is None and m:
            if chunk:
                yield False, "".join(chunk)
            chunk, fence = [line], m.group(1)
        elif fence is not None and line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
            chunk.append(line)
            yield True, "".join(chunk)
            chunk, fence = [], None
        else:
            chunk.append(line)
    if chunk:
        yield fence is not None, "".join(chunk)


def _rewrite_links(text: str, source_dir: Path, page_dir: Path, where: str, anchors_page: str = "") -> str:
    """Make the relative links of Markdown from `source_dir` work from a page
    in `page_dir` (both absolute): targets inside docs/ stay relative (MkDocs
    then checks them, anchors included); targets elsewhere in the repository
    must exist and become links to the repository. With `anchors_page` (a
    docs page, relative to page_dir), links to an anchor alone go there: a
    section included alone links to the rest of its file where that is
    included whole."""

    def fix(m: "re.Match[str]") -> str:
        target = m.group("target")
        if target.startswith("#") and anchors_page:
            return f"[{m.group('text')}]({anchors_page}{target})"
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = Path(posixpath.normpath(str(source_dir / path)))
        if not resolved.exists():
            raise PluginError(f"{where}: link to {target}: {resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved} does not exist")
        if DOCS in resolved.parents or resolved == DOCS:
            rel = os.path.relpath(resolved, page_dir)
            return f"[{m.group('text')}]({rel}{'#' + anchor if anchor else ''})"
        if ROOT not in resolved.parents:
            raise PluginError(f"{where}: link to {target} leaves the repository")
        kind = "tree" if resolved.is_dir() else "blob"
        url = f"{REPO_URL}/{kind}/main/{resolved.relative_to(ROOT).as_posix()}"
        return f"[{m.group('text')}]({url}{'#' + anchor if anchor else ''})"

    return "".join(chunk if code else LINK.sub(fix, chunk) for code, chunk in _outside_code(text))


def _section(text: str, anchor: str, where: str) -> str:
    """The section under the heading whose slug is `anchor`, down to the next
    heading of the same or a higher level."""
    lines = text.splitlines(keepends=True)
    start = level = None
    in_code = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
        if not m:
            continue
        if start is None and slugify(m.group(2), "-") == anchor:
            start, level = i, len(m.group(1))
        elif start is not None and len(m.group(1)) <= level:
            return "".join(lines[start:i])
    if start is None:
        raise PluginError(f"{where}: no heading with anchor #{anchor}")
    return "".join(lines[start:])


def _shift_headings(text: str, level: int) -> str:
    first = re.search(r"^(#{1,6})\s", text, re.M)
    if not first:
        return text
    delta = level - len(first.group(1))
    out = []
    in_code = False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            in_code = not in_code
        m = re.match(r"^(#{1,6})(\s.*)$", line, re.S)
        if m and not in_code:
            line = "#" * min(6, max(1, len(m.group(1)) + delta)) + m.group(2)
        out.append(line)
    return "".join(out)


def include(args: str, page_dir: Path, where: str) -> str:
    words = args.split()
    if not words:
        raise PluginError(f"{where}: hexz:include needs a path")
    path, _, anchor = words[0].partition("#")
    options = dict(w.split("=", 1) for w in words[1:])
    source = Path(posixpath.normpath(str(page_dir / path)))
    if not source.is_file():
        raise PluginError(f"{where}: hexz:include {words[0]}: no such file")
    text = source.read_text()
    if anchor:
        text = _section(text, anchor, where)
    if "level" in options:
        text = _shift_headings(text, int(options["level"]))
    return _rewrite_links(text, source.parent, page_dir, f"{where} (included {words[0]})", options.get("anchors", ""))


# ---- hooks --------------------------------------------------------------------------------------

REPO_URL = ""
CLI_DIR = "reference/cli"


def _cli_nav_section(nav) -> Optional[list]:
    """The nav list that holds reference/cli/index.md."""
    if isinstance(nav, list):
        for entry in nav:
            found = _cli_nav_section(entry)
            if found is not None:
                return found
            if entry == f"{CLI_DIR}/index.md" or (isinstance(entry, dict) and f"{CLI_DIR}/index.md" in entry.values()):
                return nav
    elif isinstance(nav, dict):
        for value in nav.values():
            found = _cli_nav_section(value)
            if found is not None:
                return found
    return None


def on_config(config):
    global REPO_URL
    REPO_URL = (config.get("repo_url") or "").rstrip("/")
    if not REPO_URL:
        raise PluginError("mkdocs.yml needs repo_url (links to repository files point there)")
    section = _cli_nav_section(config["nav"])
    if section is None:
        raise PluginError(f"mkdocs.yml nav must list {CLI_DIR}/index.md (the CLI pages are added beside it)")
    listed = {v for e in section for v in (e.values() if isinstance(e, dict) else [e])}
    names = [name for name, _ in commands()]
    for entry in listed:
        m = re.match(rf"{CLI_DIR}/(\w[\w-]*)\.md$", entry)
        if m and m.group(1) != "index" and m.group(1) not in names:
            raise PluginError(f"mkdocs.yml nav lists {entry}, but hexz has no command {m.group(1)}")
    for name in names:
        if f"{CLI_DIR}/{name}.md" not in listed:
            section.append({f"hexz {name}": f"{CLI_DIR}/{name}.md"})
    return config


def on_files(files: Files, config) -> Files:
    names = [name for name, _ in commands()]
    for page in (DOCS / CLI_DIR).glob("*.md"):
        if page.stem != "index" and page.stem not in names:
            raise PluginError(f"docs/{CLI_DIR}/{page.name}: hexz has no command {page.stem} (hexz --help lists "
                              f"{', '.join(names)}); remove or rename the page")
    for name in names:
        uri = f"{CLI_DIR}/{name}.md"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=f"# hexz {name}\n\n<!-- hexz:cli-help {name} -->\n"))
    from pygments.formatters import HtmlFormatter

    css = HtmlFormatter(style="default").get_style_defs(".highlight")
    files.append(File.generated(config, "css/pygments.css", content=css))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    src = page.file.src_uri
    page_dir = DOCS / posixpath.dirname(src)
    where = f"docs/{src}"

    def expand(m: "re.Match[str]") -> str:
        name, args = m.group("name"), m.group("args").strip()
        if name == "cli-help":
            return cli_help(args)
        if name == "cli-commands":
            return cli_commands()
        if name == "c-api":
            header = ROOT / args
            if not header.is_file():
                raise PluginError(f"{where}: hexz:c-api {args}: no such header")
            return gen_c_api.render(header, args)
        if name == "go-doc":
            return gen_go_doc.render(gen_go_doc.go_doc(ROOT / args))
        if name == "versions":
            return gen_versions.render()
        if name == "include":
            return include(args, page_dir, where)
        raise PluginError(f"{where}: unknown marker hexz:{name}")

    # Markers are expanded outside code blocks only, then links are checked.
    out = "".join(chunk if code else MARKER.sub(expand, chunk) for code, chunk in _outside_code(markdown))
    return _rewrite_links(out, page_dir, page_dir, where)
