# imgsink container image on Debian 13 (trixie): build stage with Debian's
# -dev packages, runtime stage with only the shared libraries, running as an
# unprivileged user. The package lists are the ones scripts/sysroot.sh
# installs into the Debian 13 sysroot the tests build and run against
# (test/e2e/t06 checks they are installed there).
#
#   docker build -t imgsink .
#   docker run --rm imgsink help config
FROM debian:trixie-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        librdkafka-dev libvips-dev libavro-dev libcurl4-openssl-dev libssl-dev \
        libjansson-dev libxml2-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY VERSION Makefile ./
COPY connector/ connector/
COPY processors/ processors/
# Inside the image Debian 13 is the host: no sysroot (PLATFORM=host).
RUN make PLATFORM=host build

FROM debian:trixie-slim
# Debian 13's libheif loads its codecs as plugins: AV1 encode (AVIF
# renditions), AV1 and HEVC decode.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libvips42t64 libavro24 libcurl4t64 libssl3t64 libjansson4 libxml2 \
        libmicrohttpd12t64 ca-certificates \
        libheif-plugin-aomenc libheif-plugin-dav1d libheif-plugin-libde265 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home imgsink
COPY --from=build /src/build/host/imgsink /usr/local/bin/imgsink
COPY schemas/ /usr/share/imgsink/schemas/
USER 10001
# Configuration comes from IMGSINK_* variables (or -c FILE); see README.
# /metrics, /healthz and /readyz on every interface of the container.
ENV IMGSINK_HTTP_LISTEN=:9464
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/imgsink"]
CMD ["run"]
