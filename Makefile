# Build, run and test the registry gateway. `make help` lists the targets.

GO      ?= go
BIN     := bin
CERTS   := certs
# Image path of make compose-up: offline (bin/ on scratch, nothing pulled) or
# release (golang + distroless, needs the internet).
BUILD_TARGET ?= offline
# The CA bundle the offline images carry (the gateway calls ECR over TLS).
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# Flags for bin/devstack, e.g. make run DEVSTACK_FLAGS='-gateway-addr 127.0.0.1:6000'
DEVSTACK_FLAGS ?=
# make run TLS=1: HTTPS only, with a development CA under certs/
TLS ?=
# Licence backend of `make run`: sql (SQLite accounts made with `tokenserver
# accounts`, and the web console on localhost:5003) or file
# (deploy/licenses.yaml, no console): make run LICENSES=file
LICENSES ?= sql

# What --version and the build_info metric say. go build stamps the commit
# itself in a plain checkout; COMMIT covers a git worktree and
# -buildvcs=false, where it stamps nothing. Empty outside a git checkout
# (then the binaries say "(devel)" and "unknown").
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git status --porcelain 2>/dev/null | grep -q . && echo +dirty)
BUILDINFO := github.com/acme/registry-gateway/internal/buildinfo
LDFLAGS := $(if $(VERSION),-X $(BUILDINFO).version=$(VERSION)) $(if $(COMMIT),-X $(BUILDINFO).commit=$(COMMIT))

.DEFAULT_GOAL := build
# Time each fuzz target gets in `make fuzz`.
FUZZTIME ?= 20s

.PHONY: release help build run test bounds fuzz bench bench-deps fmt vet cross-vet lint keys clean compose-up compose-down offline-context compose-plugin helm client-tools chart-test chart-schema monitoring-test

help:
	@echo 'build       bin/tokenserver, bin/gateway, bin/devstack, bin/registry (static, CGO_ENABLED=0)'
	@echo 'run         build, then the demo stack on localhost:5000 (keys generated if missing; TLS=1: HTTPS; LICENSES=file: the licence file, no console)'
	@echo 'test        go vet, then every test with -race (skopeo tests need skopeo), then chart-test and monitoring-test'
	@echo 'chart-test  the Helm chart: lint, render, strict decode, check-config (needs `make helm` once)'
	@echo 'chart-schema  write the config schemas of both services into the chart values.schema.json (from the config structs)'
	@echo 'monitoring-test  deploy/monitoring: the alert rules and dashboard parse, and name only metrics the running services export'
	@echo 'helm        build the pinned helm CLI once, cached under ~/.cache/registry-gateway'
	@echo 'client-tools  helm, cosign and oras built once into ~/.cache/registry-gateway for test/clients (cosign: minutes)'
	@echo 'bounds      the memory, stack and allocation bounds: tests tagged //go:build bounds (not in make test)'
	@echo 'fuzz        every Fuzz* test of the module for FUZZTIME (default 20s) each'
	@echo 'bench       cd bench && go run ./cmd/bench (bench-deps first; the bench is a module of its own)'
	@echo 'bench-deps  nginx and its Lua module (Debian) for the bench, when missing'
	@echo 'fmt         gofmt -w'
	@echo 'vet         go vet ./...'
	@echo 'lint        gofmt (fail if it would change a file), go vet, cross-vet, staticcheck (pinned, cached under ~/.cache/registry-gateway)'
	@echo 'cross-vet   go vet ./... for each of CROSS_TARGETS (default darwin/arm64 windows/amd64): the module builds off Linux'
	@echo 'keys        certs/token.key and friends, unless they exist'
	@echo 'compose-up  the same stack with Docker Compose, built offline (BUILD_TARGET=release: golang + distroless); ports and subnet in .env'
	@echo 'compose-down     stop it and remove its volume'
	@echo 'offline-context  build, and the CA bundle into bin/, for the offline images'
	@echo 'compose-plugin   build the docker compose v2 plugin once into ~/.cache (prints its path)'
	@echo 'release     VERSION=1.4.0 REGISTRY=host[/path]: multi-arch images + SBOMs + chart, pushed without Docker (INSECURE=1: plain HTTP)'
	@echo 'clean       remove bin/ and data/ (not the keys in certs/)'

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/tokenserver ./cmd/gateway ./cmd/devstack ./cmd/registry

# devstack generates the keys itself when they are missing; `keys` first
# only so that keygen's summary is printed.
run: build keys
	$(BIN)/devstack -bin $(BIN) -licenses $(LICENSES) $(if $(filter 1 yes true,$(TLS)),-tls) $(DEVSTACK_FLAGS)

# Every package with -race: the whole run takes about a minute on 2 cores,
# well under what is worth splitting packages for. -count=1: the tests use
# real servers and clients (and skopeo), never a cached result.
test: vet
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./...
	$(MAKE) chart-test
	$(MAKE) monitoring-test

# The chart's tests are a module of their own (k8s.io/api stays out of the
# product's go.mod). Without a cached helm they skip with a hint, unless
# CI=true or REQUIRE_HELM=1.
chart-test:
	cd charts/registry-gateway/test && $(GO) vet ./... && $(GO) test -count=1 ./...

# The monitoring tests are a module of their own too: they parse the alert
# rules and the dashboard with github.com/prometheus/prometheus's parsers,
# which stay out of the product's go.mod.
MONITORING_TEST := deploy/monitoring/test

monitoring-test:
	cd $(MONITORING_TEST) && $(GO) vet ./... && $(GO) test -race -count=1 ./...

helm:
	@scripts/helm.sh

# The CLIs the real-client tests (test/clients) run; without them those
# tests skip, unless REQUIRE_HELM/REQUIRE_COSIGN/REQUIRE_ORAS=1.
client-tools:
	@scripts/helm.sh && scripts/cosign.sh && scripts/oras.sh

# The tokenserver.config and gateway.config subtrees of the chart's
# values.schema.json are generated from the config structs
# (internal/configschema); its test fails when the committed file drifts.
chart-schema:
	$(GO) run ./internal/configschema/cmd charts/registry-gateway/values.schema.json

# Memory, stack and allocation bounds hold for one Go release on one kind
# of machine: a Go upgrade may move them without a bug, so they live in
# _test.go files tagged //go:build bounds, outside make test. Packages are
# found, not listed (as in fuzz below); they are vetted with the tag too,
# since go vet ./... skips tagged files.
bounds:
	@pkgs=$$(grep -rl --include='*_test.go' '^//go:build bounds' cmd internal pkg test | xargs -r -n1 dirname | sort -u | sed 's|^|./|'); \
	if [ -z "$$pkgs" ]; then echo "bounds: no test file is tagged //go:build bounds"; exit 0; fi; \
	echo "$(GO) vet -tags bounds $$pkgs" && $(GO) vet -tags bounds $$pkgs && \
	echo "$(GO) test -count=1 -tags bounds $$pkgs" && $(GO) test -count=1 -tags bounds $$pkgs

# Each Fuzz* function in turn (go test -fuzz takes one package and one
# target at a time). Targets are found, not listed: a package is asked for
# its Fuzz functions when one of its test files declares one, so new fuzz
# tests run here without editing this file. Their seed corpora also run in
# `make test`.
fuzz:
	@set -e; \
	pkgs=$$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal pkg test | xargs -r -n1 dirname | sort -u); \
	for dir in $$pkgs; do \
		for fn in $$($(GO) test -list '^Fuzz' ./$$dir | grep '^Fuzz'); do \
			echo "== $$dir $$fn ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$dir; \
		done; \
	done

# The benchmark is a Go module of its own under bench/ (its dependencies stay
# out of the product's go.mod); it finds the repository from bench/ upwards.
bench: bench-deps
	cd bench && $(GO) run ./cmd/bench

# The nginx contenders (plain proxy_pass, and the article's nginx + Lua) need
# Debian's nginx and libnginx-mod-http-lua: installed when missing, as root
# or with sudo; otherwise the bench skips those contenders and says so.
NGINX_PKGS := nginx libnginx-mod-http-lua
bench-deps:
	@if [ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then exit 0; fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	if command -v apt-get >/dev/null 2>&1 && { [ -z "$$sudo" ] || command -v sudo >/dev/null 2>&1; }; then \
		$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $(NGINX_PKGS) \
			|| echo "bench-deps: $(NGINX_PKGS) not installed; the bench skips the nginx contenders"; \
	else echo "bench-deps: no apt-get (or no root): install $(NGINX_PKGS) for the nginx contenders; the bench skips them"; fi

# Go code lives in these folders; bench/, charts/registry-gateway/test and
# deploy/monitoring/test are modules of their own.
GO_DIRS := cmd internal pkg test bench charts deploy

fmt:
	gofmt -w $(GO_DIRS)

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd $(MONITORING_TEST) && $(GO) vet ./...

# The module must build on macOS and Windows too (a vendor's engineer runs
# `make run` on a Mac): go vet compiles every package with its test files
# for each target, so Linux-only code outside a _linux.go / //go:build linux
# file fails here. All targets are vetted and the failed ones listed at the
# end. One target per other OS: each target compiles the whole dependency
# tree (standard library included) again, 3.5 to 5.5 minutes a target with
# a cold build cache on 2 shared cores, seconds when the cache is warm, and
# CI's fresh machine has only a few minutes to spare; arch-only differences
# are rare in this code (its build tags are by OS). Others on demand:
# make cross-vet CROSS_TARGETS='darwin/amd64 windows/arm64 linux/arm64'
CROSS_TARGETS ?= darwin/arm64 windows/amd64

cross-vet:
	@failed=""; \
	for t in $(CROSS_TARGETS); do \
		echo "GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./..."; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./... || failed="$$failed $$t"; \
		(cd bench && CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./...) || failed="$$failed $$t(bench)"; \
	done; \
	if [ -n "$$failed" ]; then echo "cross-vet failed for:$$failed"; exit 1; fi

# staticcheck is pinned in scripts/staticcheck.sh and built once into the
# cache outside the clone (it is not a dependency of the product).
lint: vet cross-vet
	@files=$$(gofmt -l $(GO_DIRS)); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	@sc=$$(scripts/staticcheck.sh) && echo "$$sc ./..." && $$sc ./... && echo "(cd bench && $$sc ./...)" && (cd bench && $$sc ./...) \
		&& echo "(cd $(MONITORING_TEST) && $$sc ./...)" && cd $(MONITORING_TEST) && $$sc ./...

keys: build
	@if [ -f $(CERTS)/token.key ]; then echo "$(CERTS)/token.key exists; keeping it (bin/tokenserver keygen -dir $(CERTS) -force replaces it)"; \
	else $(BIN)/tokenserver keygen -dir $(CERTS); fi

offline-context: build
	cp $(CA_BUNDLE) $(BIN)/ca-certificates.crt

# What compose reads for NAME: the environment's value, else .env's (the
# stack's ports and network are set there only).
compose_env = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' .env))
# The registry's host:port as clients name it: GATEWAY_URL's, else
# localhost and GATEWAY_PORT, as compose.yaml makes the realm.
COMPOSE_GATEWAY_URL = $(or $(call compose_env,GATEWAY_URL),http://localhost:$(call compose_env,GATEWAY_PORT))
COMPOSE_HOST = $(patsubst https://%,%,$(patsubst http://%,%,$(COMPOSE_GATEWAY_URL)))

# --wait: returns once every service is healthy and the demo images are
# pushed; the services keep running.
compose-up: keys offline-context
	BUILD_TARGET=$(BUILD_TARGET) HOST_UID=$$(id -u) HOST_GID=$$(id -g) docker compose up --build --wait
	@echo 'Up. Try:'
	@echo '  printf demo-api-token | docker login $(COMPOSE_HOST) -u demo@example.com --password-stdin'
	@echo '  docker pull $(COMPOSE_HOST)/stable/hello:1.0'
	@echo '  docker pull $(COMPOSE_HOST)/beta/hello:1.0    # refused: no licence for beta'
	@echo 'Metrics: http://127.0.0.1:$(call compose_env,GATEWAY_METRICS_PORT)/metrics (gateway), http://127.0.0.1:$(call compose_env,TOKEN_METRICS_PORT)/metrics (token service)'
	@echo 'Ports and network: .env. make compose-down stops it and removes its data.'

compose-down:
	docker compose down -v

compose-plugin:
	.ci/compose-plugin

# make release VERSION=1.4.0 REGISTRY=registry.example.com/acme: the
# services cross-built for RELEASE_PLATFORMS with LDFLAGS, as multi-arch
# OCI images (no Docker daemon), an SPDX SBOM each as a referrer, and the
# chart, pushed to REGISTRY with docker's logins; the digests are printed
# and written with everything else to bin/release/VERSION
# (cmd/release, docs/deploying.md#releasing). SOURCE_DATE_EPOCH (default:
# the commit's time) makes a rebuild of a commit give the same digests.
# INSECURE=1 talks plain HTTP to REGISTRY (a local one).
RELEASE_PLATFORMS ?= linux/amd64,linux/arm64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
release:
	@if [ -z "$(REGISTRY)" ]; then echo 'make release: REGISTRY=host[:port][/path] is required'; exit 2; fi
	@helm=$$(scripts/helm.sh) && \
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/release -version '$(VERSION)' -registry '$(REGISTRY)' \
		$(if $(filter 1 yes true,$(INSECURE)),-insecure) -ldflags '$(LDFLAGS)' -commit '$(COMMIT)' \
		-platforms '$(RELEASE_PLATFORMS)' -ca-bundle '$(CA_BUNDLE)' -helm "$$helm" -out '$(BIN)/release/$(VERSION)'

clean:
	rm -rf $(BIN) data
