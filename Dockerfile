# The one sitetally image, used by every service of docker-compose.yml.
# Dependencies are built in their own layer (cargo-chef), so a change to sitetally's code
# rebuilds only sitetally; the binary is stripped and runs as an unprivileged user.
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json -p sitetally
COPY . .
ENV CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=0
RUN cargo build --release -p sitetally --bin sitetally

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sitetally \
    && useradd --system --uid 10001 --gid sitetally --home-dir /var/lib/sitetally sitetally \
    && mkdir -p /var/lib/sitetally && chown sitetally:sitetally /var/lib/sitetally
COPY --from=build /src/target/release/sitetally /usr/local/bin/sitetally
USER sitetally
WORKDIR /var/lib/sitetally
ENTRYPOINT ["sitetally"]
