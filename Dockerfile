# Switchboard container image.
#   docker build -t switchboard .
#   docker run -p 3000:3000 -p 3001:3001 \
#     -e SWITCHBOARD_INTERNAL_LISTEN=0.0.0.0:3001 -e SWITCHBOARD_INTERNAL_TOKEN=change-me switchboard
# The agent console's socket.io-client bundle (demo = true), from npm as
# pinned by demo/package-lock.json.
FROM node:22-bookworm-slim AS console
WORKDIR /demo
COPY demo/package.json demo/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The console's page is compiled into the binary.
COPY demo/page ./demo/page
# The workspace's other member (the load generator) must be present for
# Cargo to read the workspace; only the server is built. vendor/ holds the
# patched engineioxide (docs/engineioxide-patch.md).
COPY bench ./bench
COPY vendor ./vendor
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY config/switchboard.example.toml /etc/switchboard/switchboard.example.toml
# Where the binary looks beside itself (../share/switchboard/demo/).
COPY --from=console /demo/node_modules/socket.io-client/dist/socket.io.min.js /usr/local/share/switchboard/demo/socket.io.min.js
USER switchboard
EXPOSE 3000 3001
# The public listener's /health needs no token and is always reachable.
ENV RUST_LOG=info
# The image has no curl: the binary probes its own internal /health (with the
# same SWITCHBOARD_* environment, so it finds the internal listener).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/switchboard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
