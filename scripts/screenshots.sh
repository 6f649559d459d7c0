#!/usr/bin/env bash
# Renders report.html into PNGs with headless Chromium, for a person to
# look at what a new user sees: a caught known-bad store (named on its
# own), an all-stores run, and a recorded history that fails with no
# explainer to name why. Each report gets two pictures: the top of the
# page as it opens (-top.png) and the whole page (-full.png).
#
# Usage: scripts/screenshots.sh [OUT]   (default out/screenshots)
# MEMSTORE names the command (default bin/memstore), DURATION the workload
# of each run (default 5s).
set -euo pipefail

out=${1:-out/screenshots}
bin=${MEMSTORE:-bin/memstore}
duration=${DURATION:-5s}
chromium=$(command -v chromium) || { echo "screenshots: chromium not found; run 'make chromium' (or: sudo apt-get install -y chromium)" >&2; exit 1; }
[ -x "$bin" ] || { echo "screenshots: $bin not found; run 'go build -o $bin ./cmd/memstore'" >&2; exit 1; }
mkdir -p "$out"

# headless runs Chromium on url with a fresh profile, removed afterwards.
headless() {
	local profile status=0
	profile=$(mktemp -d)
	timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=5000 "$@" 2>/dev/null || status=$?
	rm -rf "$profile"
	return $status
}

# pageHeight prints the height of the page html, measured by Chromium in a
# copy that reports it (the copy sits beside html, so that its frames load
# the same way).
pageHeight() {
	local html=$1 probe h
	probe="$(dirname "$html")/.height-probe.html"
	sed 's|</body>|<script>addEventListener("load",()=>setTimeout(()=>document.body.dataset.height=document.documentElement.scrollHeight,300))</script></body>|' "$html" >"$probe"
	h=$(headless --window-size=1280,1400 --dump-dom "file://$(realpath "$probe")" | grep -o 'data-height="[0-9]*"' | grep -o '[0-9]*' || true)
	rm -f "$probe"
	echo "${h:-6000}"
}

# shoot writes NAME-top.png and NAME-full.png of the report html.
shoot() {
	local html=$1 name=$2 h
	h=$(pageHeight "$html")
	h=$((h > 30000 ? 30000 : h))
	headless --window-size=1280,1400 --screenshot="$out/$name-top.png" "file://$(realpath "$html")" >/dev/null
	headless --window-size=1280,"$h" --screenshot="$out/$name-full.png" "file://$(realpath "$html")" >/dev/null
	echo "screenshots: $out/$name-top.png, $out/$name-full.png (${h}px)"
}

# run runs the command; a check that fails is what some pictures show.
run() {
	local name=$1 status=0
	shift
	"$bin" "$@" >"$out/$name.txt" 2>"$out/$name.log" || status=$?
	echo "screenshots: memstore $* -> exit $status (table in $out/$name.txt)"
}

run known-bad check --store write-db-delete-cache --duration "$duration" --out "$out/known-bad"
shoot "$out/known-bad/report.html" known-bad
run all check --duration "$duration" --out "$out/all"
shoot "$out/all/report.html" all
run unexplained check-history --out "$out/unexplained" verify/testdata/memstore-flush-k2.jsonl
shoot "$out/unexplained/report.html" unexplained
