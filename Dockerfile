# The image the Kubernetes manifests use (gridflow cluster kubernetes --image): the gridflow
# binary on a slim Debian, run as an unprivileged user. Build from the repository root:
#   docker build -t gridflow:0.1.0 .
# Not built by the test suite (CI has no container daemon); see docs/deploy.md.

FROM rust:1.91-slim-bookworm AS build
# cmake and clang: aws-lc-sys (TLS of the cloud object stores); the other -sys crates need only
# the C compiler that the Rust image has.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gridflow-cli \
    && strip target/release/gridflow

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 gridflow
COPY --from=build /src/target/release/gridflow /usr/local/bin/gridflow
USER 1000
WORKDIR /home/gridflow
# The scheduler's and the dashboard's ports.
EXPOSE 8786 8787
ENTRYPOINT ["gridflow"]
CMD ["--help"]
