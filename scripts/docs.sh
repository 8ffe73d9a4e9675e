#!/usr/bin/env bash
# The documentation site (MkDocs, docs/ + mkdocs.yml):
#   ./scripts/docs.sh          build it into target/docs/site: the CLI, Python, C and Go references are
#                              generated from the code, and any broken link or anchor fails the build
#   ./scripts/docs.sh serve    the same, served at http://127.0.0.1:8000 while you edit
#   ./scripts/docs.sh test     build, then run every example of every page (tests/docs: the real
#                              models, the built hexz, the installed Python package, libhexz, Go)
# Needs Rust, Python 3 with pip; `test` also the Python package installed (pip install ./bindings/python),
# a C compiler, pkg-config and Go, as scripts/test.sh has by then.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r docs/requirements.txt
cargo build --release --quiet -p hexz-cli   # the CLI reference is its --help
case "${1:-build}" in
  build) python3 -m mkdocs build --quiet ;;
  serve) python3 -m mkdocs serve ;;
  test)
    python3 -m mkdocs build --quiet
    echo "site: target/docs/site/index.html" >&2
    python3 -m pytest -q tests/docs ;;
  *) echo "usage: $0 [build|serve|test]" >&2; exit 2 ;;
esac
