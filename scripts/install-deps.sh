#!/usr/bin/env bash
# Installs what memstore's tests and command need on Debian: redis-server,
# PostgreSQL, and Debian's python3 with python3-redis and python3-pytest for
# the example adapter of `memstore check --exec` (examples/python). Idempotent, and fast when everything is present (no apt at
# all). As root it installs with apt-get; otherwise it prints the command to
# run and fails.
#
# The tests start private servers themselves (memtest), on free ports and in
# temporary directories, so the system services the packages would start are
# kept from starting, or stopped and disabled after the install.
set -euo pipefail

INSTALL_CMD="sudo apt-get install -y redis-server postgresql python3 python3-redis python3-pytest"

# pg_bin prints the newest PostgreSQL bin dir holding initdb and postgres:
# PATH first, then /usr/lib/postgresql/*/bin, where Debian keeps them (the
# memtest fixture searches the same places).
pg_bin() {
	local initdb dir
	if initdb=$(command -v initdb 2>/dev/null) && [ -x "$(dirname "$initdb")/postgres" ]; then
		dirname "$initdb"
		return 0
	fi
	while read -r dir; do
		if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
			echo "$dir"
			return 0
		fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r)
	return 1
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
pg_bin >/dev/null || missing+=(postgresql)
# The Python example runs on Debian's interpreter, whatever python3 comes
# first on PATH, with Debian's packages (PyPI is not needed).
for mod in redis:python3-redis pytest:python3-pytest; do
	if [ ! -x /usr/bin/python3 ]; then
		missing+=(python3 "${mod#*:}")
	elif ! /usr/bin/python3 -c "import ${mod%%:*}" >/dev/null 2>&1; then
		missing+=("${mod#*:}")
	fi
done
# As root, PostgreSQL runs as the postgres system user, which the package creates.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
	[[ " ${missing[*]} " == *" postgresql "* ]] || missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: ok: $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-) redis-server, PostgreSQL in $(pg_bin), /usr/bin/python3 with redis and pytest"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing: ${missing[*]}" >&2
	echo "deps: install them with:" >&2
	echo "    $INSTALL_CMD" >&2
	exit 1
fi

echo "deps: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' services from starting (policy-rc.d 101: "action
# forbidden"), unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# Stop and disable whatever started anyway: our fixtures start private
# servers, and a system one would only hold ports and memory.
for svc in redis-server postgresql; do
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		service "$svc" stop >/dev/null 2>&1 || true
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
	fi
done

command -v redis-server >/dev/null 2>&1 || { echo "deps: redis-server still missing after install" >&2; exit 1; }
dir=$(pg_bin) || { echo "deps: initdb/postgres not found in PATH or /usr/lib/postgresql/*/bin after install" >&2; exit 1; }
/usr/bin/python3 -c "import redis, pytest" || { echo "deps: /usr/bin/python3 cannot import redis and pytest after install" >&2; exit 1; }
echo "deps: ok: redis-server and PostgreSQL installed (PostgreSQL binaries in $dir)"
