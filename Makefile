# Build, run and test the registry gateway. `make help` lists the targets.

GO      ?= go
BIN     := bin
CERTS   := certs
# Flags for bin/devstack, e.g. make run DEVSTACK_FLAGS='-gateway-addr 127.0.0.1:6000'
DEVSTACK_FLAGS ?=

.DEFAULT_GOAL := build
.PHONY: help build run test bench bench-deps fmt vet lint keys clean compose-up

help:
	@echo 'build       bin/tokenserver, bin/gateway, bin/devstack (static, CGO_ENABLED=0)'
	@echo 'run         build, then the demo stack on localhost:5000 (keys generated if missing)'
	@echo 'test        go vet, then every test with -race (skopeo tests need skopeo)'
	@echo 'bench       go run ./cmd/bench (bench-deps first)'
	@echo 'bench-deps  nginx and its Lua module (Debian) for the bench, when missing'
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
	$(BIN)/devstack $(DEVSTACK_FLAGS)

# Every package with -race: the whole run takes about a minute on 2 cores,
# well under what is worth splitting packages for. -count=1: the tests use
# real servers and clients (and skopeo), never a cached result.
test: vet
	$(GO) test -race -count=1 ./...

bench: bench-deps
	$(GO) run ./cmd/bench

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
