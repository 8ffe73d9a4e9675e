"""Every example in docs/ runs: one test per page, its shell, Python, C and
Go blocks run in order, as a reader would, against the real models, the
built `hexz`, the installed Python package, libhexz and Go.

How a page is run (the directives are HTML comments, invisible on the site;
scripts/docs/mdblocks.py parses them):

- Blocks run in a scratch folder, with HOME a scratch folder too (so
  `$HOME/.local/...` in an example stays inside the test) and these set:
  `HEXZ_SRC` (this repository: examples say "your clone"), `HEXZ_MODELS`
  (the cached real models), PATH with the built `hexz` and this Python,
  pip pointed at the cached model wheels only (PIP_NO_INDEX, PIP_FIND_LINKS).
- `sh` blocks run in bash (`set -eo pipefail`); what they export and the
  folder they end in carry over to the next blocks, as in one terminal.
- `python` blocks run as a script with this interpreter.
- `c` blocks are whole programs: built with `cc -std=c11 -Wall -Wextra
  -Werror -pedantic` and `pkg-config hexz` (the page installs libhexz and
  sets PKG_CONFIG_PATH first, as a reader must), then run.
- `go` blocks are whole `package main` programs, built in a module that
  requires the Go package of this repository, then run.
- `<!-- doctest: args="A B" -->` passes arguments to a C or Go program;
  `exit=N` expects that exit status; `file=NAME` writes the block to NAME
  instead of running it; `cwd=repo` runs it in the repository;
  `needs=s3` (moto's S3 server: AWS_* set, bucket `models`), `needs=http`
  (nginx serving the scratch folder at $SERVER), `needs=fuse` (skips the page
  where FUSE is missing, as tests/mount does);
  `skip REASON` does not run the block (the reason is printed at the end).
- `<!-- doctest: expect -->` before a `text` block: each of its lines must
  appear, in order, in what the previous block printed (`...` matches
  anything).
- `<!-- doctest: setup ... -->` is shell run just before the next block,
  not shown on the site (what a how-to assumes you already have).

Mounts left under the scratch folder are unmounted after each page."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "docs"))
import mdblocks  # noqa: E402

DOCS = ROOT / "docs"
TIMEOUT = 600
SKIPPED: List[str] = []
RAN: Dict[str, int] = {}


def runnable_pages() -> List[Path]:
    pages = []
    for page in sorted(DOCS.rglob("*.md")):
        if any(b.kind or b.setup for b in mdblocks.blocks(page)):
            pages.append(page)
    return pages


def _real(var: str, default: Path) -> str:
    return os.environ.get(var, str(default))


class Session:
    """One page's terminal: environment and folder carried from block to block."""

    def __init__(self, scratch: Path, models: Path):
        self.scratch = scratch
        self.home = scratch / "home"
        self.work = scratch / "work"
        self.blocks_dir = scratch / "blocks"
        for d in (self.home, self.work, self.blocks_dir):
            d.mkdir(parents=True)
        real_home = Path.home()
        env = dict(os.environ)
        env.update(
            HOME=str(self.home),
            # The toolchains stay where they are; only installs go to the scratch HOME.
            CARGO_HOME=_real("CARGO_HOME", real_home / ".cargo"),
            RUSTUP_HOME=_real("RUSTUP_HOME", real_home / ".rustup"),
            CARGO_INSTALL_ROOT=str(self.home / ".cargo"),
            HEXZ_SRC=str(ROOT),
            HEXZ_MODELS=str(models),
            PIP_NO_INDEX="1",
            PIP_FIND_LINKS=str(models / "pkgs"),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PYTHONDONTWRITEBYTECODE="1",
            NO_COLOR="1",
            PATH=os.pathsep.join([str(self.home / ".cargo" / "bin"), str(self.home / ".local" / "bin"),
                                  str(ROOT / "target" / "release"), str(Path(sys.executable).parent),
                                  os.environ.get("PATH", "")]),
        )
        # Go's build cache stays in the scratch HOME too: a shared one keeps the
        # link flags of libhexz installs that no longer exist.
        self.env = env
        self.cwd = self.work
        self.output = ""
        self.count = 0

    def _run(self, cmd: List[str], block: mdblocks.Block, cwd: Optional[Path] = None, want: Optional[int] = None,
             code: Optional[str] = None) -> str:
        out = subprocess.run(cmd, cwd=cwd or self.cwd, env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=TIMEOUT)
        text = out.stdout.decode(errors="replace")
        if want is None:
            want = int(block.directives.get("exit", "0"))
        if out.returncode != want:
            raise AssertionError(f"{block.where()}: exited {out.returncode}, expected {want}\n"
                                 f"--- block ---\n{code or block.code}--- output ---\n{text}")
        return text

    def shell(self, code: str, block: mdblocks.Block, setup: bool = False) -> str:
        """Run `code` (the block's, or its hidden setup, which must succeed)."""
        self.count += 1
        envfile = self.blocks_dir / f"env-{self.count}"
        cwdfile = self.blocks_dir / f"cwd-{self.count}"
        script = self.blocks_dir / f"block-{self.count}.sh"
        cwd = ROOT if block.directives.get("cwd") == "repo" else self.cwd
        script.write_text(f"trap 'env -0 > {envfile}; pwd > {cwdfile}' EXIT\nset -eo pipefail\n{code}")
        text = self._run(["bash", str(script)], block, cwd=cwd, want=0 if setup else None,
                         code=f"(setup)\n{code}\n" if setup else None)
        if envfile.exists():
            pairs = [p.split("=", 1) for p in envfile.read_bytes().decode(errors="replace").split("\0") if "=" in p]
            self.env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in ("SHLVL", "_", "OLDPWD")}
        if cwdfile.exists() and block.directives.get("cwd") != "repo":
            self.cwd = Path(cwdfile.read_text().strip())
        return text

    def python(self, block: mdblocks.Block) -> str:
        self.count += 1
        script = self.blocks_dir / f"block-{self.count}.py"
        script.write_text(block.code)
        return self._run([sys.executable, str(script)], block)

    def c(self, block: mdblocks.Block) -> str:
        self.count += 1
        src = self.blocks_dir / f"prog-{self.count}.c"
        exe = self.blocks_dir / f"prog-{self.count}"
        src.write_text(block.code)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "hexz"], env=self.env, capture_output=True, text=True)
        if flags.returncode != 0:
            raise AssertionError(f"{block.where()}: pkg-config hexz failed (the page must install libhexz and set "
                                 f"PKG_CONFIG_PATH before its C examples): {flags.stderr}")
        build = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", str(src), "-o", str(exe),
                                *flags.stdout.split(), "-lpthread"], env=self.env, capture_output=True, text=True)
        if build.returncode != 0:
            raise AssertionError(f"{block.where()}: does not compile\n{build.stderr}")
        return self._run([str(exe), *block.args()], block)

    def go(self, block: mdblocks.Block) -> str:
        self.count += 1
        module = self.blocks_dir / f"go-{self.count}"
        module.mkdir()
        (module / "go.mod").write_text(textwrap.dedent(f"""\
            module doctest

            go 1.19

            require github.com/hexz-dev/hexz/bindings/go v0.0.0

            replace github.com/hexz-dev/hexz/bindings/go => {ROOT / 'bindings' / 'go'}
            """))
        (module / "main.go").write_text(block.code)
        exe = module / "prog"
        build = subprocess.run(["go", "build", "-o", str(exe), "."], cwd=module, env=self.env, capture_output=True, text=True)
        if build.returncode != 0:
            raise AssertionError(f"{block.where()}: does not build\n{build.stderr}")
        return self._run([str(exe), *block.args()], block)


def expect(block: mdblocks.Block, output: str) -> None:
    """Each line of the block, in order, matches a line of `output`."""
    lines = output.splitlines()
    at = 0
    for want in block.code.splitlines():
        if not want.strip():
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in want.strip().split("...")))
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            raise AssertionError(f"{block.where()}: expected output line not found (in order): {want.strip()!r}\n"
                                 f"--- output ---\n{output}")
        at += 1


def unmount_below(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in reversed(points):
        point = point.replace("\\040", " ")
        if point.startswith(str(path)):
            subprocess.run(["fusermount3", "-u", point], capture_output=True)
            subprocess.run(["umount", "-l", point], capture_output=True)


def fuse_missing() -> Optional[str]:
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse on this machine"
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        return "neither root nor fusermount3"
    return None


@pytest.fixture(scope="session", autouse=True)
def python_package_and_summary(request):
    """The examples need the hexz package in this Python; at the end, say
    how many blocks ran and which were not run, with their reasons."""
    if importlib.util.find_spec("hexz") is None:
        pytest.fail(f"{sys.executable} has no hexz package: pip install ./bindings/python first (scripts/test.sh does)")
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(summary_lines()))


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page(page: Path, request, models, tmp_path: Path) -> None:
    blocks = mdblocks.blocks(page)
    needs = {n for b in blocks for n in b.directives.get("needs", "").split(",") if n}
    if "fuse" in needs and fuse_missing():
        pytest.skip(f"needs FUSE: {fuse_missing()}")
    session = Session(tmp_path, models)
    if "s3" in needs:
        # The fixture's environment is the whole process's: take its AWS_* only.
        s3_env = request.getfixturevalue("s3")["env"]
        session.env.update({k: v for k, v in s3_env.items() if k.startswith("AWS_")})
    if "http" in needs:
        from conftest import Nginx

        (tmp_path / "nginx").mkdir()
        server = Nginx(session.work, tmp_path / "nginx")
        request.addfinalizer(server.stop)
        session.env["SERVER"] = server.url
    try:
        for block in blocks:
            for setup in block.setup:
                session.shell(setup, block, setup=True)
            if "skip" in block.directives:
                if block.kind:
                    SKIPPED.append(f"{block.where()} ({block.kind}): {block.directives['skip']}")
                continue
            if "expect" in block.directives:
                expect(block, session.output)
                continue
            if "file" in block.directives:
                target = session.cwd / block.directives["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
                if block.kind:
                    key = f"{block.kind} (as a file the page then runs)"
                    RAN[key] = RAN.get(key, 0) + 1
                continue
            if block.kind is None:
                continue
            runner = {"sh": lambda b: session.shell(b.code, b), "python": session.python, "c": session.c,
                      "go": session.go}[block.kind]
            session.output = runner(block)
            RAN[block.kind] = RAN.get(block.kind, 0) + 1
    finally:
        unmount_below(tmp_path)


def summary_lines() -> List[str]:
    lines = ["doc examples run: " + ", ".join(f"{n} {k}" for k, n in sorted(RAN.items()))]
    if SKIPPED:
        lines.append(f"doc examples not run ({len(SKIPPED)}), with the reason each page gives:")
        lines.extend("  " + s for s in SKIPPED)
    return lines
