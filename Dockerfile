# Builds the one sitetally binary. Used by docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sitetally

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sitetally /usr/local/bin/sitetally
USER nobody
ENTRYPOINT ["sitetally"]
