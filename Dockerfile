# The `tributary` binary in a small runtime image. Build from the repository root:
#   docker build -t tributary:dev .
# or through deploy/compose.yaml. One image serves every role: `tributary up` (all services in
# one process) or `tributary serve <service>` (one service per container).

FROM rust:1.95-bookworm AS builder
# Nothing to add: rdkafka's bundled librdkafka builds with make + gcc, sqlx's SQLite with cc,
# and the .proto files compile with protox (pure Rust, no protoc).
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tributary \
    && install -D -m 0755 target/release/tributary /out/tributary

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/tributary tributary
COPY --from=builder /out/tributary /usr/local/bin/tributary
USER tributary
WORKDIR /var/lib/tributary
# Admin server: /livez, /readyz, /metrics.
EXPOSE 9000
ENV TRIBUTARY__ADMIN__LISTEN=0.0.0.0:9000
ENTRYPOINT ["tributary"]
CMD ["up"]
