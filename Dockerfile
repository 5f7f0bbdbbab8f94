# The root filesystem of weft's managed plugin. scripts/build-plugin.sh builds
# it, exports it and runs `docker plugin create` with config.json; by hand:
#
#   docker build -t weft-rootfs .
#   id=$(docker create weft-rootfs) && mkdir -p plugin/rootfs
#   docker export "$id" | tar -x -C plugin/rootfs && docker rm "$id"
#   cp config.json plugin/ && docker plugin create weftnet/weft:dev plugin
#
# The runtime stage comes first so that `--target runtime` builds it alone
# (build-plugin.sh --binary puts a weft built elsewhere into it).

FROM debian:bookworm-slim AS runtime
# iptables brings both back-ends (iptables-nft and iptables-legacy, and the
# ip6tables ones); weft uses the one the host's dockerd uses.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && mkdir -p /run/docker/plugins /var/lib/weft

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/weft . \
 && /out/weft version

FROM runtime
COPY --from=build /out/weft /usr/bin/weft
ENTRYPOINT ["/usr/bin/weft", "serve"]
