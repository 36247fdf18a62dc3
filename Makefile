# memoflow: the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/memoflow
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export MEMOFLOW_VAR ?= $(CURDIR)/var
# The whole suite; the CI budget is 90 minutes, the suite takes a few.
TEST_TIMEOUT ?= 20m
FUZZTIME ?= 10s

.PHONY: all build run test test-deps bench chaos fuzz lint clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/memoflow

## run: build and start everything (embedded Kafka, local ClickHouse, all stages, APIs). Ctrl-C stops it all.
run: build
	@scripts/run.sh $(BIN) $(ARGS)

## test: the whole suite, against in-process kfake and a real local ClickHouse it starts itself.
test: test-deps lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@scripts/fuzz.sh $(FUZZTIME)

test-deps:
	@scripts/test-deps.sh
	@scripts/clickhouse.sh start

## bench: the benchmarks named in the issues, each against its same-run baseline.
bench: build test-deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./schemas/... ./stages/... ./pipeline/... 2>&1 | tee var/bench-go.txt
	$(BIN) bench copy --records 500000 --json var/bench-copy.json
	$(BIN) bench ingest --messages 1000000 --json var/bench-ingest.json
	$(BIN) bench mass-send --messages 200000 --json var/bench-mass-send.json --html var/bench-mass-send.html

## chaos: the full fault-tolerance scenario (1M messages, 10 stage kills, a broker kill, a ClickHouse outage).
## CHAOS_ARGS="--messages 100000" make chaos for a shorter one; `make test` runs a short version.
chaos: build test-deps
	$(BIN) bench chaos --json var/chaos.json --html var/chaos.html $(CHAOS_ARGS)

## fuzz: longer fuzzing of every parser (FUZZTIME=10m make fuzz).
fuzz:
	@scripts/fuzz.sh $(if $(filter 10s,$(FUZZTIME)),5m,$(FUZZTIME))

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	-@scripts/clickhouse.sh stop
	rm -rf bin $(filter-out var/go.mod,$(wildcard var/*))
