# crossservice — the two commands a newcomer runs are `make demo` and `make test`.
GO        ?= go
FUZZTIME  ?= 3s
RACE      ?= -race

.PHONY: all test vet unit fuzz demo clean

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

## demo: the best demonstration that exists so far.
demo:
	$(GO) run ./examples/demo
