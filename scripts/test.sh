#!/bin/sh
# Install what the tests need and run the whole suite.
#
#   sh scripts/test.sh [pytest arguments]
#
# Needs Python 3.10+.  The redis backend is tested against a real
# redis-server, which this script installs from Debian's packages when it is
# missing (as root, or with sudo).
#
# The tests get their own virtual environment, .venv-test (or
# $REPOCKET_VENV), apart from the README's .venv, where repocket is
# installed as an application installs it: an editable install there would
# let the clone's folder shadow the package for Python run from its parent.
# repocket is installed editable in .venv-test with its test and docs
# extras, because the suite also runs the documentation's examples, builds
# the docs with Sphinx (warnings are errors) and builds and installs the wheel.
#
# The SQLite backend plugin (backends/repocket-sqlite) is then installed as
# a real distribution (not editable), so that the conformance suite finds it
# the way an application would: through its entry point metadata.
set -eu
cd "$(dirname "$0")/.."

# redis-cli (which the package brings) creates the Redis Cluster of the tests
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server or redis-cli is missing; installing Debian's redis-server package" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

VENV="${REPOCKET_VENV:-.venv-test}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test,docs]'
"$VENV/bin/python" -m pip install --quiet ./backends/repocket-sqlite
exec "$VENV/bin/python" -m pytest "$@"
