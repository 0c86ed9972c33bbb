#!/usr/bin/env bash
# Install the real Heroku CLI (npm package `heroku`, pinned) into .cache/heroku-cli/ for the
# end-to-end compatibility test (tests/e2e/test_heroku_cli.py). Idempotent and quiet: does nothing
# (and needs no network) when the pinned version is already there. Installs Debian's nodejs and
# npm when npm is missing.
#
# --if-possible (what `make test` uses): never install system packages, and when the CLI cannot
# be installed (no npm, no network) say which test is skipped and exit 0 instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${HEROKU_CLI_VERSION:-11.10.0}"
PREFIX=".cache/heroku-cli"
BIN="$PREFIX/node_modules/.bin/heroku"
PKG="$PREFIX/node_modules/heroku/package.json"
SKIPPED="tests/e2e/test_heroku_cli.py (the real Heroku CLI against securekey) will be skipped"

IF_POSSIBLE=0
case "${1:-}" in
  --if-possible) IF_POSSIBLE=1 ;;
  "") ;;
  *) echo "usage: $0 [--if-possible]" >&2; exit 2 ;;
esac

installed_version() {
  [ -x "$BIN" ] && [ -f "$PKG" ] || return 1
  command -v node >/dev/null 2>&1 || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$PWD/$PKG"
}

# Cannot install: fail (CI, a direct run), or with --if-possible say plainly what is skipped.
cannot() {
  if [ "$IF_POSSIBLE" -eq 1 ]; then
    echo "--- Heroku CLI $VERSION not installed: $1." >&2
    echo "--- $SKIPPED; install it with scripts/install-heroku-cli.sh to include it." >&2
    exit 0
  fi
  echo "$1" >&2
  exit 1
}

# Already there: nothing to do, and no network needed.
if [ "$(installed_version 2>/dev/null || true)" = "$VERSION" ]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$IF_POSSIBLE" -eq 1 ]; then
    cannot "npm is missing (install Debian's nodejs and npm)"
  fi
  echo "--- installing nodejs and npm (Debian packages)"
  if [ "$(id -u)" -ne 0 ]; then
    cannot "npm is missing and this is not root: install nodejs and npm first"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

echo "--- installing the Heroku CLI $VERSION into $PREFIX"
mkdir -p "$PREFIX"
if ! npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
  "heroku@$VERSION" >/dev/null; then
  cannot "npm install heroku@$VERSION failed (offline, or the registry is unreachable)"
fi

got="$(installed_version || true)"
if [ "$got" != "$VERSION" ]; then
  cannot "Heroku CLI install failed: expected $VERSION at $BIN, found '${got:-nothing}'"
fi
