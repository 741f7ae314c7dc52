# Periscope's build. `make help` lists the targets.

SHELL := /bin/bash

# sudo drops /usr/local/go/bin from PATH: find go either way.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT ?= $(dir $(GO))gofmt
export PATH := $(dir $(GO)):$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/periscope
HUBBLE_CLI := bin/hubble
SCHEMATHESIS := bin/venv/bin/schemathesis
KUBE_APISERVER := bin/kube-apiserver

TEST_TIMEOUT ?= 20m
BENCH_OUT ?= bin/bench.txt
PKGS ?= ./...
# Third-party packages the binary links that import testing themselves
# (go-control-plane's logger has a test constructor beside the real one).
TESTING_ALLOWED := github.com/envoyproxy/go-control-plane/pkg/log
GENERATED := ':(glob)datapath/**/*_bpfel.go' ':(glob)datapath/**/*_bpfel.o'

# Root-only tests run as root; when not root, through sudo if there is one
# (otherwise they skip, or fail under CI=true).
ROOT := $(shell if [ "$$(id -u)" -eq 0 ]; then true; elif command -v sudo >/dev/null; then echo sudo env PATH="$$PATH" CI="$$CI"; fi)

.PHONY: help deps hubble-cli kube-apiserver generate build test bench demo lint check-tidy check-generated clean

help:
	@echo "make deps             install toolchain, lab tools and Go modules (scripts/deps.sh)"
	@echo "make hubble-cli       build the hubble CLI of go.mod's cilium into $(HUBBLE_CLI) (for tests)"
	@echo "make kube-apiserver   build the kube-apiserver of go.mod's client-go release into $(KUBE_APISERVER) (for tests)"
	@echo "make generate         regenerate the eBPF objects with bpf2go (needs clang)"
	@echo "make build            build $(BIN)"
	@echo "make test             install deps, the hubble CLI and kube-apiserver, then run every test (root tests as root)"
	@echo "make bench            run the benchmarks into $(BENCH_OUT)"
	@echo "sudo make demo        pods, traffic, a collector and live flows"
	@echo "make lint             gofmt, go vet, go mod tidy, and no test code of ours in the shipped binary"
	@echo "make check-generated  fail if the committed eBPF objects are stale"
	@echo "make clean            remove build outputs"

deps:
	scripts/deps.sh

hubble-cli: deps
	scripts/hubble-cli.sh

kube-apiserver: deps
	scripts/kube-apiserver.sh

generate:
	$(GO) generate ./datapath/...

build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/periscope

test: deps hubble-cli kube-apiserver
	$(ROOT) env PERISCOPE_HUBBLE_CLI=$(abspath $(HUBBLE_CLI)) PERISCOPE_KUBE_APISERVER=$(abspath $(KUBE_APISERVER)) PERISCOPE_SCHEMATHESIS=$(abspath $(SCHEMATHESIS)) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

bench: deps
	@mkdir -p $(dir $(BENCH_OUT))
	set -o pipefail; $(ROOT) $(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) $(PKGS) | tee $(BENCH_OUT)
	@echo "benchmarks written to $(BENCH_OUT)"

demo: deps build
	$(ROOT) $(BIN) demo

lint: check-tidy
	@out=$$($(GOFMT) -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@importers=$$($(GO) list -deps -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' ./cmd/periscope | \
		awk '{for (i = 2; i <= NF; i++) if ($$i == "testing") print $$1}' | grep -vxF -f <(printf '%s\n' $(TESTING_ALLOWED))); \
	if [ -n "$$importers" ]; then \
		echo "the shipped binary links package testing through $$importers: a test helper is imported by production code"; exit 1; fi

# go mod tidy must leave go.mod and go.sum as committed.
check-tidy:
	$(GO) mod tidy -diff

check-generated: generate
	@git diff --exit-code -- $(GENERATED) || \
		{ echo "generated eBPF objects are stale: run make generate and commit them"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- $(GENERATED)); \
	if [ -n "$$untracked" ]; then echo "generated files not committed: $$untracked"; exit 1; fi

clean:
	rm -rf bin coverage.out coverage.html *.test *.prof
