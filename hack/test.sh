#!/usr/bin/env bash
# The test command: lint, types, then every test (unit, integration with real tools, e2e with real guests).
# Pass pytest arguments through, e.g. `hack/test.sh -m "not e2e"` for the quick loop.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "== ruff" >&2
$PY -m ruff check .
echo "== mypy (strict) on limapy/" >&2
$PY -m mypy
echo "== pytest" >&2
exec $PY -m pytest -p no:cacheprovider "$@"
