# syntax=docker/dockerfile:1
#
# usergraph container image.
#
#   docker build -t usergraph:dev .
#   docker run --rm -p 8080:8080 --env-file .env usergraph:dev
#
# Stages:
#   chef     Rust toolchain on Alpine (musl) + cargo-chef, shared by the next two.
#   planner  Reduces the workspace to a dependency "recipe" (Cargo.toml/lock only).
#   builder  Cooks (compiles) the dependencies from the recipe in their own layer,
#            which Docker reuses until Cargo.toml/Cargo.lock change, then builds
#            the usergraph binary from the sources. On Alpine the host target is
#            *-linux-musl, so the binary is statically linked (rustls, no OpenSSL)
#            and runs unchanged on amd64 and arm64 (buildx --platform).
#   runtime  distroless/static (no shell, no package manager, CA certificates and
#            tzdata only) running as the unprivileged UID/GID 65532.

ARG RUST_VERSION=1
ARG CARGO_CHEF_VERSION=0.1.77

FROM rust:${RUST_VERSION}-alpine AS chef
ARG CARGO_CHEF_VERSION
# C toolchain for the crates with C parts (ring, bundled SQLite in
# libsqlite3-sys). Their versions follow the Alpine release of the rust image;
# pinning them again here would break on every Alpine bump.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc \
    && cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /src
# Strip symbols and keep the binary lean; the same setting is used for cook and
# build so the cooked dependency artefacts are reused.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependency layer: rebuilt only when the recipe (manifests + lockfile) changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin usergraph
# Application layer.
COPY . .
RUN cargo build --release --locked --bin usergraph \
    && install -D -m 0555 target/release/usergraph /out/usr/local/bin/usergraph

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="usergraph" \
      org.opencontainers.image.description="GraphQL user-management service (accounts, sessions, roles, audit)" \
      org.opencontainers.image.vendor="usergraph" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/usergraph/usergraph" \
      org.opencontainers.image.documentation="https://github.com/usergraph/usergraph/tree/main/docs" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=builder --chown=0:0 /out/usr/local/bin/usergraph /usr/local/bin/usergraph

# Production defaults; everything else comes from the environment (.env.example).
# AUTO_MIGRATE=false: migrations run as their own one-shot job
# (`usergraph migrate up`: the compose `migrate` service, the k8s/migrate Job).
ENV APP_ENV=production \
    LOG_FORMAT=json \
    AUTO_MIGRATE=false \
    BIND_ADDR=0.0.0.0:8080 \
    RUST_LOG=info

# 65532 = "nonroot" in distroless; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080

# The binary is its own probe (GET 127.0.0.1:<BIND_ADDR port>/health within 2 s),
# so no shell or curl is needed in the image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/usergraph", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/usergraph"]
CMD ["serve"]
