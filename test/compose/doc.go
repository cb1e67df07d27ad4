// Package compose holds the test of compose.yaml with the real Docker
// engine: the stack built offline (BUILD_TARGET=offline), started with
// `docker compose up --wait` against a private dockerd, and pulled from
// with `docker login` and `docker pull` through the published gateway port.
//
// It needs dockerd (Debian's docker.io), root, and the compose v2 CLI
// plugin, which Debian does not package: `make compose-plugin` builds it
// once into the cache (.ci/compose-plugin), or COMPOSE_PLUGIN names one.
// Without them the test is skipped, unless REQUIRE_DOCKER=1.
package compose
