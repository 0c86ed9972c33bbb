#!/usr/bin/env bash
# Install the real Heroku CLI (npm package `heroku`, pinned) into .cache/heroku-cli/ for the
# end-to-end compatibility test (tests/e2e/test_heroku_cli.py). Idempotent and quiet: does nothing
# when the pinned version is already there. Installs Debian's nodejs and npm when npm is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${HEROKU_CLI_VERSION:-11.10.0}"
PREFIX=".cache/heroku-cli"
BIN="$PREFIX/node_modules/.bin/heroku"
PKG="$PREFIX/node_modules/heroku/package.json"

installed_version() {
  [ -x "$BIN" ] && [ -f "$PKG" ] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$PWD/$PKG"
}

if ! command -v npm >/dev/null 2>&1; then
  echo "--- installing nodejs and npm (Debian packages)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "npm is missing and this is not root: install nodejs and npm first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

if [ "$(installed_version 2>/dev/null || true)" = "$VERSION" ]; then
  exit 0
fi

echo "--- installing the Heroku CLI $VERSION into $PREFIX"
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
  "heroku@$VERSION" >/dev/null

got="$(installed_version || true)"
if [ "$got" != "$VERSION" ]; then
  echo "Heroku CLI install failed: expected $VERSION at $BIN, found '${got:-nothing}'" >&2
  exit 1
fi
