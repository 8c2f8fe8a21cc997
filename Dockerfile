# syntax=docker/dockerfile:1.7
#
# The Plexus image: every binary, statically linked (musl), on a distroless base with no shell
# and no package manager. One image serves both DaemonSets in deploy/:
#   - the node DaemonSet runs `plexus install`, which copies the CNI binaries (plexus,
#     plexus-macvlan, plexus-ipvlan, plexus-sriov) from /opt/plexus/bin into the node's CNI bin
#     dir; the container runtime then runs them on the node, outside any container, which is why
#     they must be static: nodes run every libc (or none) a distribution ships;
#   - the device-plugin DaemonSet runs /opt/plexus/bin/plexus-device-plugin.
#
#   docker build -t ghcr.io/plexus-cni/plexus:0.1.0 .
#
# Multi-arch: the build stage compiles for the architecture it runs on (`uname -m`), so
# `docker buildx build --platform linux/amd64,linux/arm64` builds each natively (or emulated).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12

FROM ${RUST_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# musl-gcc: ring (rustls' crypto) compiles C and assembly for the musl target.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target dir between builds; the binaries are
# copied out of the cache within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    export "CC_${target//-/_}=musl-gcc"; \
    cargo build --release --locked --target "$target" \
        --bin plexus --bin plexus-macvlan --bin plexus-ipvlan --bin plexus-sriov \
        --bin plexus-device-plugin; \
    mkdir -p /out; \
    for bin in plexus plexus-macvlan plexus-ipvlan plexus-sriov plexus-device-plugin; do \
        cp "target/$target/release/$bin" /out/; \
    done

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="plexus" \
      org.opencontainers.image.description="Plexus: a Multus-compatible multi-network CNI meta-plugin with built-in macvlan, ipvlan and SR-IOV, and an SR-IOV device plugin" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /opt/plexus/bin/
ENV PATH=/opt/plexus/bin:/usr/local/bin:/usr/bin:/bin
# Both DaemonSets name their command; without one the container installs Plexus on the node.
CMD ["/opt/plexus/bin/plexus", "install"]
