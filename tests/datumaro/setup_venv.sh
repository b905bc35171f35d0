#!/usr/bin/env bash
# Create a separate virtualenv holding Datumaro, used by the import round-trip tests.
# Datumaro's dependency pins clash with ours, so it never goes into the project venv.
#
# Usage: tests/datumaro/setup_venv.sh [VENV_DIR]
#   VENV_DIR defaults to ${DATUMARO_VENV:-$HOME/.cache/openimages-etl/datumaro-venv}.
# Idempotent: does nothing if VENV_DIR/bin/python can already import datumaro.
# Prints the venv's python path as its last line.
set -euo pipefail

DATUMARO_VERSION="${DATUMARO_VERSION:-1.13.12}"
VENV_DIR="${1:-${DATUMARO_VENV:-$HOME/.cache/openimages-etl/datumaro-venv}}"
PY="$VENV_DIR/bin/python"

if [ -x "$PY" ] && "$PY" -c 'import datumaro' >/dev/null 2>&1; then
    echo "datumaro already importable in $VENV_DIR" >&2
    echo "$PY"
    exit 0
fi

BASE_PY="${PYTHON:-python3}"
mkdir -p "$(dirname "$VENV_DIR")"
"$BASE_PY" -m venv "$VENV_DIR"
"$PY" -m pip install --quiet --upgrade pip >&2
"$PY" -m pip install --quiet "datumaro==${DATUMARO_VERSION}" >&2
"$PY" -c 'import datumaro; print("datumaro", datumaro.__version__)' >&2
echo "$PY"
