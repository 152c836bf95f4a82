# syntax=docker/dockerfile:1
#
# One image for every Switchyard process. The default command runs the
# all-in-one server (embedded storage, built-in simulator for providers
# without a key); docker-compose.yml runs each service from this same image
# by naming its binary in `command:`.
#
#   docker build -t switchyard .
#   docker run --rm -p 8080:8080 -v switchyard-data:/var/lib/switchyard switchyard
#
# BuildKit (the default builder since Docker 23) is required for the cache
# mounts below.

ARG RUST_VERSION=1

# ------------------------------------------------------------------ builder
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# Least-often-changed inputs first, so an edit under crates/ reuses the layers
# above it. Every workspace member's manifest must be present for cargo to
# load the workspace, hence tests/ too (it is small and never built here).
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY deploy deploy
COPY tests tests
COPY crates crates

# The registry and target directory live in cache mounts, so a rebuild after a
# source edit recompiles only the workspace crates, not the dependency tree.
# Cache mounts are not part of the image: the binaries are copied out of
# target/ within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
        -p switchyard \
        -p switchyard-catalog \
        -p switchyard-usage-metering \
        -p switchyard-provider-adapter \
        -p switchyard-router \
        -p provider-sim \
 && mkdir -p /out \
 && cp target/release/switchyard \
       target/release/switchyard-catalog \
       target/release/switchyard-usage-metering \
       target/release/switchyard-provider-adapter \
       target/release/switchyard-router \
       target/release/provider-sim \
       /out/

# ------------------------------------------------------------------ runtime
FROM debian:bookworm-slim AS runtime

# ca-certificates: the provider adapter calls providers over HTTPS. Not
# pinned: the point is to get the distribution's current CA bundle.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid, so orchestrators can enforce runAsNonRoot and volume
# ownership is predictable.
RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid switchyard \
        --home-dir /var/lib/switchyard --shell /usr/sbin/nologin switchyard \
 && mkdir -p /var/lib/switchyard /etc/switchyard \
 && chown switchyard:switchyard /var/lib/switchyard

COPY --from=builder /out/switchyard \
     /out/switchyard-catalog \
     /out/switchyard-usage-metering \
     /out/switchyard-provider-adapter \
     /out/switchyard-router \
     /out/provider-sim \
     /usr/local/bin/
# Mount your own seed over this file to change the catalog.
COPY deploy/catalog.toml /etc/switchyard/catalog.toml

# Services default to 127.0.0.1; in a container they must listen on all
# interfaces. Each service reads only its own variables, so these are safe to
# share across every process started from this image.
ENV SWITCHYARD_HTTP_ADDR=0.0.0.0:8080 \
    SWITCHYARD_ROUTER_GRPC_ADDR=0.0.0.0:50051 \
    SWITCHYARD_DATA_DIR=/var/lib/switchyard \
    SWITCHYARD_CATALOG_SEED=/etc/switchyard/catalog.toml

# mimalloc (every service's allocator) returns freed memory to the OS after
# a 1 s delay by default, so under load resident memory floats well above
# what a service uses; returning it at once cost a few percent of CPU and
# took the all-in-one's peak at 32 connections from 56-77 MB to 44-46 MB in
# an A/B (README, "Performance"). Override per container if CPU matters more.
ENV MIMALLOC_PURGE_DELAY=0

WORKDIR /var/lib/switchyard
USER 10001:10001
EXPOSE 8080 50051

# For the default all-in-one command; docker-compose.yml sets a matching probe
# per service. `switchyard health` keeps curl and friends out of the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["switchyard", "health", "--http", "http://127.0.0.1:8080/readyz"]

CMD ["switchyard"]
