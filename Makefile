# CI is these targets (see .ci/run): `make test` is what must pass.
# Every target that needs servers depends on deps, which installs
# redis-server and PostgreSQL on Debian when they are missing.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        ?= ./...
ARGS        ?=
BENCH_ARGS  ?=

.PHONY: all deps test test-short test-examples bin/memstore lint fmt fmt-check vet staticcheck run demo bench chromium screenshots soak soak-cluster

all: test

deps:
	@bash scripts/install-deps.sh

# The full gate: formatting, vet, staticcheck, then every test with the race
# detector against real servers.
test: deps lint
	$(GO) test -race -timeout 25m $(PKGS)
	$(MAKE) test-examples

# The --exec example the way a Python team runs it: its own pytest suite
# runs the built memstore command on its adapter (examples/python).
# examples/go-exec is a package of this module, run by go test above;
# examples/prometheus is a module of its own (the OpenTelemetry SDK and
# exporter stay out of memstore's go.mod), linted and tested here.
test-examples: deps bin/memstore
	cd examples/python && MEMSTORE_BIN=$(CURDIR)/bin/memstore PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider .
	cd examples/prometheus && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -race -timeout 5m ./...

bin/memstore:
	$(GO) build -o bin/memstore ./cmd/memstore

# Without the race detector: a quicker loop while editing.
test-short: deps
	$(GO) test -timeout 10m $(PKGS)

lint: fmt-check vet staticcheck

fmt-check:
	@files="$$(gofmt -l .)"; \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run make fmt):"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

fmt:
	gofmt -w .

# The main job: `memstore check` against memstore and every known-bad
# strategy; the table on stdout, the report in memstore-out/. Pass flags
# with ARGS="..." (memstore check -h lists them). Built, not `go run`, so
# that the exit status is the command's own (0, 1 or 2).
run: deps bin/memstore
	./bin/memstore check $(ARGS)

# The long run behind the guarantee: memstore (and db-only, the control)
# under every fault, worker kills included, on SQLite and on a private
# PostgreSQL, SOAK_RUNS runs of SOAK_DURATION each with successive seeds
# (about 1,700 operations a second per store on 2 cores: the defaults give
# over a million operations per database). Exits non-zero on any violation.
SOAK_RUNS     ?= 10
SOAK_DURATION ?= 60s
soak: deps bin/memstore
	./bin/memstore check --store memstore --store db-only --processes 2 --runs $(SOAK_RUNS) --duration $(SOAK_DURATION) --out out/soak-sqlite $(ARGS)
	./bin/memstore check --store memstore --store db-only --processes 2 --runs $(SOAK_RUNS) --duration $(SOAK_DURATION) --db postgres --out out/soak-postgres $(ARGS)
	$(MAKE) soak-cluster

# A long run of the verifier on private Redis Clusters (every store, every
# cluster fault, worker processes): not part of `make test`. Pass flags
# with ARGS="...".
soak-cluster: deps bin/memstore
	./bin/memstore check --redis-cluster --processes 2 --duration 2m --out out/soak-cluster $(ARGS)

# The thirty-second pitch: the stale read of the naive store, and none in
# memstore, through the real stores with the race forced by a hook.
demo: deps
	$(GO) build -o bin/memstore ./cmd/memstore
	./bin/memstore demo

# Headless Chromium pictures of report.html, for people to look at: a
# caught known-bad store, an all-stores run and a recorded failure no
# explainer names, into out/screenshots/ (top of the page and whole
# page). Needs Chromium, which `make chromium` installs; `make test` does
# not.
screenshots: deps chromium
	$(GO) build -o bin/memstore ./cmd/memstore
	bash scripts/screenshots.sh out/screenshots

chromium:
	@bash scripts/install-chromium.sh

# The cost of the test fixtures (targets: Redis <= 50 ms, Postgres <= 200 ms,
# a private Redis Cluster <= 2.5 s, of which Redis itself holds 2 s),
# then `memstore bench` with the peer libraries (the nested module bench/):
# pass its flags with BENCH_ARGS="--duration 2s --out DIR".
bench: deps
	$(GO) test -run '^$$' -bench Fixture -benchtime 20x ./memtest/
	cd bench && $(GO) run . $(BENCH_ARGS)
