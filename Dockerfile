# syntax=docker/dockerfile:1
#
# One build, three images (pick one with --target):
#
#   docker build --target tokenserver -t registry-gateway/tokenserver .
#   docker build --target gateway     -t registry-gateway/gateway .
#   docker build --target seed        -t registry-gateway/seed .   # demo images for compose
#
# Static binaries (CGO_ENABLED=0) on distroless/static, as the non-root user
# 65532. There is no shell or curl in the images, so every image carries
# /tokenserver for its health check: `/tokenserver healthcheck URL` exits 0
# when URL answers 2xx.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/tokenserver ./cmd/gateway ./cmd/devstack

FROM gcr.io/distroless/static-debian12:nonroot AS base
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

# Last, so that a plain `docker build .` gives the token service.
FROM base AS tokenserver
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/tokenserver", "healthcheck", "http://127.0.0.1:5001/healthz"]
ENTRYPOINT ["/tokenserver"]
CMD ["serve", "-config", "/etc/registry-gateway/tokenserver.yaml"]
