# Build a static (musl) binary, then ship it alone with CA certificates.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ENV CC_x86_64_unknown_linux_musl=musl-gcc
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin dbt-cloud-job-trigger

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/dbt-cloud-job-trigger /dbt-cloud-job-trigger
ENV KBC_DATADIR=/data/ \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Any non-root id: Keboola runs components as a non-root user and mounts /data for it.
USER 65532:65532
ENTRYPOINT ["/dbt-cloud-job-trigger"]
