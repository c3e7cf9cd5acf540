# crossservice — the two commands a newcomer runs are `make demo` and `make test`.
GO        ?= go
# Every target builds and tests with go1.27.3, the newest Go release the module
# proxy serves here: go1.26.8's standard library has known vulnerabilities
# (net/http, crypto/tls, crypto/x509, net/textproto) fixed since. go.mod still
# says go 1.26.8, the oldest Go the library builds with; `make test
# GOTOOLCHAIN=local` tests with the machine's own Go.
export GOTOOLCHAIN := go1.27.3
FUZZTIME  ?= 3s
RACE      ?= -race
# bench: time per benchmark per round, and rounds (benchstat needs 6 for a
# confidence interval). BENCHTIME=100ms COUNT=2 checks the pipeline quickly.
BENCHTIME ?= 1s
COUNT     ?= 6
BIN       ?= $(CURDIR)/bin
BENCHOUT  ?= $(BIN)/bench
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT := $(BIN)/benchstat-$(BENCHSTAT_VERSION)/benchstat

.PHONY: all test vet unit fuzz demo clean bench soak lint vulncheck

all: test

## test: go vet, every test with -race, and a short run of every fuzz target.
test: vet unit fuzz

vet:
	$(GO) vet ./...

unit:
	$(GO) test $(RACE) -count=1 -timeout 20m ./...

## fuzz: every Fuzz* target in the module for $(FUZZTIME) each (seed corpus + new inputs).
fuzz:
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz-smoke

## soak: 60s of mixed valid, replayed, tampered and unauthorized requests on two
## replicas sharing a real Redis, with a key rotation and a Redis restart; prints
## its report (internal/soak). `make test` runs a 10s version.
soak:
	SOAK_DURATION=60s $(GO) test -run TestSoak -count=1 -v ./internal/soak/

## lint: staticcheck over the module (installed from the module proxy into $(BIN)).
STATICCHECK_VERSION ?= v0.8.2
# Tools that load packages are built per toolchain: one built by an older Go
# cannot type-check a newer standard library.
STATICCHECK := $(abspath $(BIN))/staticcheck-$(STATICCHECK_VERSION)-$(GOTOOLCHAIN)/staticcheck
$(STATICCHECK):
	GOBIN=$(abspath $(dir $(STATICCHECK))) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
lint: $(STATICCHECK)
	$(STATICCHECK) ./...

## vulncheck: govulncheck over both modules (root and bench/), against a
## vulnerability database built from the golang.org/x/vulndb module at a pinned
## version (fetched from the module proxy, so it runs where the database's own
## host is out of reach). Raise VULNDB_VERSION to see newer reports, or give
## GOVULNDB (a URL or file:// path) to use another database.
GOVULNCHECK_VERSION ?= v1.9.0
VULNDB_VERSION      ?= v0.0.0-20261105234957-e22db6528018
GOVULNCHECK := $(abspath $(BIN))/govulncheck-$(GOVULNCHECK_VERSION)-$(GOTOOLCHAIN)/govulncheck
VULNDB_DIR  := $(abspath $(BIN))/vulndb-$(VULNDB_VERSION)
GOVULNDB    ?= file://$(VULNDB_DIR)
$(GOVULNCHECK):
	GOBIN=$(abspath $(dir $@)) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
$(VULNDB_DIR)/index/db.json:
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	@src="$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv"; \
	test -d "$$src" || { echo "vulncheck: $$src is missing" >&2; exit 1; }; \
	rm -rf "$(VULNDB_DIR).tmp" && \
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$src" -out "$(VULNDB_DIR).tmp" && \
	rm -rf "$(VULNDB_DIR)" && mv "$(VULNDB_DIR).tmp" "$(VULNDB_DIR)"
vulncheck: $(GOVULNCHECK) $(if $(filter file://$(VULNDB_DIR),$(GOVULNDB)),$(VULNDB_DIR)/index/db.json)
	"$(GOVULNCHECK)" -db "$(GOVULNDB)" ./...
	cd bench && "$(GOVULNCHECK)" -db "$(GOVULNDB)" ./...

## clean: remove built tools and benchmark output.
clean:
	rm -rf $(BIN)

## demo: the three-service demo (examples/demo).
demo:
	$(GO) run ./examples/demo

## bench: the benchmarks that matter, each beside its floor, $(COUNT) interleaved
## rounds of $(BENCHTIME), medians by benchstat; writes BENCHMARKS.md (generated:
## never edit it). Raw output stays in $(BENCHOUT). Fails after writing the
## report if a suite did not build or a round failed.
bench: $(BENCHSTAT)
	@rc=0; GO=$(GO) BENCHTIME=$(BENCHTIME) COUNT=$(COUNT) OUT=$(BENCHOUT) BENCHSTAT=$(BENCHSTAT) \
		bash bench/run || rc=$$?; \
	$(GO) run ./internal/benchreport -dir $(BENCHOUT) -benchtime $(BENCHTIME) -count $(COUNT) -o BENCHMARKS.md || exit 1; \
	echo "bench: wrote BENCHMARKS.md"; exit $$rc

# benchstat from the module proxy, at a pinned version, into a directory of
# its own under $(BIN) (a new version installs beside the old).
$(BENCHSTAT):
	GOBIN=$(dir $@) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
