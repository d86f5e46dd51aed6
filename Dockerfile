# Build stage: compiles Faultline. No database is needed at build time: queries are checked at
# run time; migrations, templates and static files are embedded in the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY templates templates
COPY static static
RUN cargo build --release --locked --bin faultline \
 && strip target/release/faultline

# Runtime stage: a small Debian with only the binary, run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home faultline \
 && mkdir -p /var/lib/faultline/spool && chown -R faultline /var/lib/faultline
COPY --from=build /src/target/release/faultline /usr/local/bin/faultline
USER faultline
ENV FAULTLINE_BIND=0.0.0.0:8000 \
    FAULTLINE_SPOOL_DIR=/var/lib/faultline/spool \
    LOG_FORMAT=json
EXPOSE 8000
ENTRYPOINT ["faultline"]
CMD ["serve"]
