# syntax=docker/dockerfile:1
#
# usergraph container image, for linux/amd64 and linux/arm64.
#
#   docker build -t usergraph:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t usergraph:multi .
#   docker run --rm -p 8080:8080 --env-file .env usergraph:dev
#
# Every build stage runs on the BUILD platform and cross-compiles: the binary
# for the TARGET platform is produced by rustc for its musl target and linked
# by Zig (cargo-zigbuild), never run in the builder, so an arm64 image builds
# as fast as an amd64 one on an amd64 runner, without QEMU. Only the runtime
# stage is of the target platform, and nothing RUNs in it.
#
# Stages:
#   chef     Rust toolchain (build platform) + both musl targets, Zig and
#            cargo-zigbuild (pinned, from PyPI) and cargo-chef.
#   planner  Reduces the workspace to a dependency "recipe" (Cargo.toml/lock only).
#   builder  Cooks (compiles) the dependencies for the target from the recipe in
#            their own layer, reused until Cargo.toml/Cargo.lock change, then
#            builds the usergraph binary. musl: statically linked (rustls, no
#            OpenSSL, bundled SQLite), so it runs on distroless/static.
#   runtime  distroless/static of the target platform (no shell, no package
#            manager, CA certificates and tzdata only) running as the
#            unprivileged UID/GID 65532.

ARG RUST_VERSION=1
ARG CARGO_CHEF_VERSION=0.1.77
ARG ZIGLANG_VERSION=0.15.2
ARG CARGO_ZIGBUILD_VERSION=0.24.1

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
ARG ZIGLANG_VERSION
ARG CARGO_ZIGBUILD_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# python3-venv for the pinned Zig and cargo-zigbuild wheels. Debian's package
# versions follow the rust image's release; pinning them again here would break
# on every point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/zig \
    && /opt/zig/bin/pip install --no-cache-dir \
        "ziglang==${ZIGLANG_VERSION}" "cargo-zigbuild==${CARGO_ZIGBUILD_VERSION}" \
    && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
    && cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
    && rm -rf "${CARGO_HOME}/registry"
# cargo-zigbuild finds Zig through the venv's python (python -m ziglang).
ENV PATH="/opt/zig/bin:${PATH}"
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
# Set by buildx for each platform of --platform (amd64, arm64).
ARG TARGETARCH
RUN case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH '${TARGETARCH}' (amd64 or arm64)" >&2; exit 1 ;; \
    esac >/rust-target
COPY --from=planner /src/recipe.json recipe.json
# Dependency layer: rebuilt only when the recipe (manifests + lockfile) changes.
RUN cargo chef cook --release --locked --zigbuild --target "$(cat /rust-target)" \
      --recipe-path recipe.json --bin usergraph
# Application layer. The binary is copied out, not executed.
COPY . .
RUN target="$(cat /rust-target)" \
    && cargo zigbuild --release --locked --target "${target}" --bin usergraph \
    && install -D -m 0555 "target/${target}/release/usergraph" /out/usr/local/bin/usergraph

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
