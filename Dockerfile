# One Dockerfile, two ways to get the binaries, four images (pick one with
# --target):
#
#   docker build --target tokenserver -t registry-gateway/tokenserver .
#   docker build --target gateway     -t registry-gateway/gateway .
#   docker build --target registry    -t registry-gateway/registry .  # compose's upstream
#   docker build --target seed        -t registry-gateway/seed .      # demo images for compose
#
# BUILD_TARGET=release (default): the binaries are built here, in golang,
# on distroless/static. Needs Docker Hub, gcr.io and the Go module proxy.
#
# BUILD_TARGET=offline: no base image and no network. The static binaries
# come from the host's `make build` (bin/), on scratch with the host's CA
# bundle (bin/ca-certificates.crt, copied by `make offline-context`):
#
#   make offline-context && docker build --build-arg BUILD_TARGET=offline --target gateway .
#
# `make release` builds the tokenserver and gateway images without Docker,
# for linux/amd64 and arm64, and pushes them with the chart
# (docs/deploying.md#releasing); keep its config in step with the targets
# below (internal/release checks the entrypoints).
#
# Both run as the non-root user 65532. There is no shell or curl in the
# images, so every image carries /tokenserver for its health check:
# `/tokenserver healthcheck URL` exits 0 when URL answers 2xx.
#
# No `# syntax=` line: it makes BuildKit pull docker/dockerfile from Docker
# Hub, which the offline path must not; the daemon's built-in Dockerfile
# frontend has every feature used here (RUN --mount needs BuildKit).

ARG GO_VERSION=1.26
ARG BUILD_TARGET=release

FROM golang:${GO_VERSION} AS build-release
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# What --version and build_info say: the context may carry no .git, so
# `docker build --build-arg VERSION=... --build-arg COMMIT=...` sets them.
ARG VERSION=""
ARG COMMIT=""
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/acme/registry-gateway/internal/buildinfo.version=${VERSION} -X github.com/acme/registry-gateway/internal/buildinfo.commit=${COMMIT}" -o /out/ \
        ./cmd/tokenserver ./cmd/gateway ./cmd/devstack ./cmd/registry

FROM gcr.io/distroless/static-debian12:nonroot AS base-release

FROM scratch AS build-offline
COPY bin/tokenserver bin/gateway bin/devstack bin/registry /out/

FROM scratch AS base-offline
COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

# BuildKit builds only the stages the target needs: the offline path never
# touches golang or distroless.
FROM build-${BUILD_TARGET} AS build

FROM base-${BUILD_TARGET} AS base
COPY --from=build /out/tokenserver /tokenserver
USER 65532:65532

FROM base AS gateway
COPY --from=build /out/gateway /gateway
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/tokenserver", "healthcheck", "http://127.0.0.1:5000/healthz"]
ENTRYPOINT ["/gateway"]
CMD ["-config", "/etc/registry-gateway/gateway.yaml"]

FROM base AS seed
COPY --from=build /out/devstack /devstack
ENTRYPOINT ["/devstack", "seed"]

FROM base AS registry
COPY --from=build /out/registry /registry
# Created by WORKDIR as the USER above, so that a named volume mounted here
# starts out owned by 65532 (there is no shell to chown it).
WORKDIR /var/lib/registry
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/tokenserver", "healthcheck", "http://127.0.0.1:5000/healthz"]
ENTRYPOINT ["/registry", "-addr", "0.0.0.0:5000", "-root", "/var/lib/registry"]
CMD ["-htpasswd", "/auth/htpasswd"]

# Last, so that a plain `docker build .` gives the token service.
FROM base AS tokenserver
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/tokenserver", "healthcheck", "http://127.0.0.1:5001/healthz"]
ENTRYPOINT ["/tokenserver"]
CMD ["serve", "-config", "/etc/registry-gateway/tokenserver.yaml"]
