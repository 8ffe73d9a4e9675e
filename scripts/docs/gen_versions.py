"""The version-compatibility matrix: what the test suite pins and what the
machine that built the page (the suite's machine, when the docs are built by
scripts/test.sh) actually ran. Read from the requirement files, Cargo.toml,
scripts and the tools themselves, so the page cannot claim a version the
suite did not run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: List[str]) -> Optional[str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else None


def _python_module_version(distribution: str) -> Optional[str]:
    """The installed distribution's version, without importing it (torch
    takes seconds to import)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pins(path: Path) -> List[Tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        m = re.match(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def render() -> str:
    rows: List[Tuple[str, str, str, str]] = []  # (component, claimed, pinned by the suite, ran here)
    cargo = (ROOT / "Cargo.toml").read_text()
    msrv = re.search(r'^rust-version = "(.*)"', cargo, re.M)
    rustc = _run(["rustc", "--version"]) or "not found"
    rows.append(("Rust", f"≥ {msrv.group(1) if msrv else '?'} (`rust-version`)",
                 f"stable, and {msrv.group(1) if msrv else '?'} (`cargo check`, MSRV step)", rustc))
    rows.append(("Rust nightly", "", "fuzz smoke (cargo-fuzz)", _run(["rustc", "+nightly", "--version"]) or "not installed"))
    pyproject = (ROOT / "bindings/python/pyproject.toml").read_text()
    requires = re.search(r'requires-python = "(.*)"', pyproject)
    rows.append(("CPython", f"{requires.group(1) if requires else '?'} (one abi3 wheel, `cp39-abi3`)",
                 "the machine's `python3`", _run([sys.executable, "--version"]) or "?"))
    numpy_claim = re.search(r'dependencies = \["numpy(.*?)"\]', pyproject)
    extras = dict(re.findall(r'^(\w+) = \["([^"]+)"', pyproject, re.M))
    suite_pins = dict(pins(ROOT / "tests/requirements.txt"))
    suite_pins.update(pins(ROOT / "bindings/python/tests/requirements.txt"))
    for name, module, claim in (
        ("NumPy", "numpy", f"numpy{numpy_claim.group(1)}" if numpy_claim else ""),
        ("PyTorch", "torch", extras.get("torch", "")),
        ("ml_dtypes", "ml_dtypes", extras.get("bf16", "")),
        ("safetensors", "safetensors", "(oracle; `hexz.safe_open` follows 0.8)"),
        ("gguf (gguf-py)", "gguf", "(oracle)"),
        ("moto", "moto", "(S3 server for the remote tests)"),
        ("boto3", "boto3", ""),
        ("pytest", "pytest", ""),
        ("mypy", "mypy", "(`mypy --strict -p hexz`)"),
        ("zstandard", "zstandard", ""),
    ):
        key = next((k for k in suite_pins if k.split("[")[0].lower() == module.lower() or k.lower() == name.lower()), None)
        ran = _python_module_version(module)
        rows.append((name, claim, suite_pins.get(key, "") if key else "", ran or "not installed"))
    gomod = (ROOT / "bindings/go/go.mod").read_text()
    go_claim = re.search(r"^go (\S+)", gomod, re.M)
    rows.append(("Go", f"≥ {go_claim.group(1) if go_claim else '?'} (`go.mod`)", "Debian's `golang-go` (`.ci/run`)",
                 _run(["go", "version"]) or "not found"))
    # The script that regenerates the header pins cbindgen (c-tests.sh, or
    # a script of its own).
    scripts = "".join(p.read_text() for p in sorted((ROOT / "scripts").glob("*.sh")))
    cbindgen = re.search(r"want_cbindgen=(\S+)", scripts)
    rows.append(("cbindgen", "", cbindgen.group(1) if cbindgen else "", _run(["cbindgen", "--version"]) or "not installed"))
    rows.append(("C compiler", "C11 and C++17 (`-Wall -Wextra -Werror -pedantic`)", "Debian's gcc, g++",
                 _run(["gcc", "--version"]) or "not found"))
    rows.append(("valgrind", "", "Debian's", _run(["valgrind", "--version"]) or "not found"))
    rows.append(("nginx", "", "Debian's `nginx-light`", _run(["nginx", "-v"]) or "not found"))
    rows.append(("FUSE", "Linux, `fusermount3` or root", "Debian's `fuse3`", _run(["fusermount3", "--version"]) or "not found"))
    docs_pins = ", ".join(f"{n} {v}" for n, v in pins(ROOT / "docs/requirements.txt"))
    rows.append(("MkDocs (this site)", "", docs_pins, _python_module_version("mkdocs") or "?"))

    out = ["| component | the project claims | the suite pins or installs | on the machine that built this page |",
           "| --- | --- | --- | --- |"]
    for comp, claim, pinned, ran in rows:
        out.append(f"| {comp} | {claim} | {pinned} | {ran} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render())
