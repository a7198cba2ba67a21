# imgsink container image: build stage with Debian's -dev packages, runtime
# stage with only the shared libraries, running as an unprivileged user.
#
#   docker build -t imgsink .
#   docker run --rm imgsink help config
FROM debian:bookworm-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        librdkafka-dev libvips-dev libavro-dev libcurl4-openssl-dev libssl-dev \
        libjansson-dev libxml2-dev libmicrohttpd-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY VERSION Makefile ./
COPY connector/ connector/
COPY processors/ processors/
RUN make build

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libvips42 libavro23 libcurl4 libssl3 libjansson4 libxml2 \
        libmicrohttpd12 libjemalloc2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home imgsink
COPY --from=build /src/build/imgsink /usr/local/bin/imgsink
COPY schemas/ /usr/share/imgsink/schemas/
USER 10001
# Configuration comes from IMGSINK_* variables (or -c FILE); see README.
# /metrics, /healthz and /readyz on every interface of the container.
ENV IMGSINK_HTTP_LISTEN=:9464
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/imgsink"]
CMD ["run"]
