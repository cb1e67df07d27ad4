# Build, run and test the registry gateway. `make help` lists the targets.

GO      ?= go
BIN     := bin
CERTS   := certs
# Flags for bin/devstack, e.g. make run DEVSTACK_FLAGS='-gateway-addr 127.0.0.1:6000'
DEVSTACK_FLAGS ?=
# Licence backend of `make run`: file (deploy/licenses.yaml) or sql (SQLite
# accounts made with `tokenserver accounts`): make run LICENSES=sql
LICENSES ?= file

.DEFAULT_GOAL := build
.PHONY: help build run test bench fmt vet lint keys clean compose-up

help:
	@echo 'build       bin/tokenserver, bin/gateway, bin/devstack (static, CGO_ENABLED=0)'
	@echo 'run         build, then the demo stack on localhost:5000 (keys generated if missing; LICENSES=sql: SQL accounts)'
	@echo 'test        go vet, then every test with -race (skopeo tests need skopeo)'
	@echo 'bench       go run ./cmd/bench'
	@echo 'fmt         gofmt -w'
	@echo 'vet         go vet ./...'
	@echo 'lint        fail if gofmt would change a file'
	@echo 'keys        certs/token.key and friends, unless they exist'
	@echo 'compose-up  the same stack with Docker Compose (needs a Docker engine)'
	@echo 'clean       remove bin/ and data/ (not the keys in certs/)'

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/tokenserver ./cmd/gateway ./cmd/devstack

# devstack generates the keys itself when they are missing; `keys` first
# only so that keygen's summary is printed.
run: build keys
	$(BIN)/devstack -licenses $(LICENSES) $(DEVSTACK_FLAGS)

# Every package with -race: the whole run takes about a minute on 2 cores,
# well under what is worth splitting packages for. -count=1: the tests use
# real servers and clients (and skopeo), never a cached result.
test: vet
	$(GO) test -race -count=1 ./...

bench:
	$(GO) run ./cmd/bench

fmt:
	gofmt -w cmd internal pkg

vet:
	$(GO) vet ./...

lint:
	@files=$$(gofmt -l cmd internal pkg); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

keys: build
	@if [ -f $(CERTS)/token.key ]; then echo "$(CERTS)/token.key exists; keeping it (bin/tokenserver keygen -dir $(CERTS) -force replaces it)"; \
	else $(BIN)/tokenserver keygen -dir $(CERTS); fi

compose-up: keys
	HOST_UID=$$(id -u) HOST_GID=$$(id -g) docker compose up --build

clean:
	rm -rf $(BIN) data
