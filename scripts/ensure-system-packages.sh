#!/usr/bin/env bash
# The system packages the tests need, in one place, installed with apt-get when they are missing
# and this machine can (root, or passwordless sudo, and apt-get). `npm test` and .ci/run both
# call it; when nothing is missing it only checks (a second or two).
#
#   chromium         drives the browser tests of the Web UI (test/ui, test/stack.test.ts)
#   postgresql-15    stores the production-like stack's Temporal server (scripts/stack.sh)
#   python3, python3-torch, python3-sklearn
#                    Debian's /usr/bin/python3 runs the external-trainer examples and the Python
#                    library's tests (a python3 earlier on PATH, a pyenv shim say, does not see
#                    Debian's packages: the tests name /usr/bin/python3)
#
# CHROMIUM_PATH (default /usr/bin/chromium) and EXPERIMENTS_STACK_PG_BIN (default
# /usr/lib/postgresql/15/bin) are where the tests look, and so where this script looks.
# EXPERIMENTS_SKIP_SYSTEM_PACKAGES=1 skips the check (for a machine set up some other way).
set -euo pipefail

if [ "${EXPERIMENTS_SKIP_SYSTEM_PACKAGES:-}" = "1" ]; then
  echo "system packages: check skipped (EXPERIMENTS_SKIP_SYSTEM_PACKAGES=1)"
  exit 0
fi

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
pg_bin="${EXPERIMENTS_STACK_PG_BIN:-/usr/lib/postgresql/15/bin}"

missing_packages() {
  local missing=()
  [ -x "$chromium" ] || missing+=(chromium)
  [ -x "$pg_bin/postgres" ] || missing+=(postgresql-15)
  if [ -x /usr/bin/python3 ]; then
    # One interpreter start for both (importing torch takes seconds): prints the missing packages.
    local py
    py="$(/usr/bin/python3 -c '
import importlib.util as u
print(" ".join("python3-" + m for m in ("torch", "sklearn") if u.find_spec(m) is None))' 2>/dev/null || echo python3-torch python3-sklearn)"
    # shellcheck disable=SC2206 # one word per package
    [ -z "$py" ] || missing+=($py)
  else
    missing+=(python3 python3-torch python3-sklearn)
  fi
  echo "${missing[*]}"
}

missing="$(missing_packages)"
if [ -z "$missing" ]; then
  echo "system packages: all present (chromium, postgresql-15, python3-torch, python3-sklearn)"
  exit 0
fi

# Sets as_root to the prefix that runs apt-get as root; fails when there is none.
as_root=()
can_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
    return 0
  fi
  return 1
}
if ! can_install; then
  echo "system packages missing: ${missing} (needed by the tests; see scripts/ensure-system-packages.sh)." >&2
  echo "This machine cannot install them here (needs apt-get and root or passwordless sudo). Install them with:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing}" >&2
  exit 1
fi

echo "system packages: installing with apt-get: ${missing}"
export DEBIAN_FRONTEND=noninteractive
# needrestart (pulled in by some images) prompts after apt-get and there is no stdin to answer it.
export NEEDRESTART_SUSPEND=1
"${as_root[@]}" apt-get update
# shellcheck disable=SC2086 # one word per package
"${as_root[@]}" apt-get install -y --no-install-recommends $missing

still="$(missing_packages)"
if [ -n "$still" ]; then
  echo "system packages: still missing after apt-get: ${still} (looked for chromium at ${chromium}, PostgreSQL in ${pg_bin})" >&2
  exit 1
fi
echo "system packages: installed ${missing}"
