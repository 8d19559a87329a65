#!/usr/bin/env bash
# Set up .venv with every test dependency, lint, type-check, then run the suite.
# Works on a fresh machine with Python 3.11 and git; as root it also installs
# PostgreSQL (for the team-scale tests) from the distribution's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL for the team-scale tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "could not install PostgreSQL; team-scale tests will skip"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
# Two workers by default (CI has two cores; most tests wait on a server or a subprocess);
# MLREPRO_TEST_WORKERS=0 runs in one process. A test file stays on one worker.
.venv/bin/python -m pytest -n "${MLREPRO_TEST_WORKERS:-2}" --dist loadfile "$@"
