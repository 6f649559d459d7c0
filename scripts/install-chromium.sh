#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package) for `make
# screenshots`, when it is missing. Opt-in: `make test` and `make run` do
# not need it, and install-deps.sh leaves it out. As root it installs with
# apt-get; otherwise it prints the command to run and fails.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
	echo "chromium: ok: $(chromium --version 2>/dev/null | head -1)"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "chromium: missing; install it with:" >&2
	echo "    sudo apt-get install -y chromium" >&2
	exit 1
fi
echo "chromium: installing with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
command -v chromium >/dev/null 2>&1 || { echo "chromium: still missing after install" >&2; exit 1; }
echo "chromium: ok: $(chromium --version 2>/dev/null | head -1)"
