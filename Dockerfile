# syntax=docker/dockerfile:1
#
# mcpedge container image: a static binary on an empty base, run as an
# unprivileged user, with its state on the /data volume. Works with a
# read-only root filesystem (give /tmp a tmpfs if upstreams need one).
#
#   docker build --build-arg VERSION=1.2.3 -t mcpedge:1.2.3 .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 -v mcpedge-data:/data \
#     -e MCPEDGE_ADMIN_KEY=… mcpedge:1.2.3
#
# The same image is built without a container daemon by deploy/mkimage
# (scripts/release.sh); deploy/image_test.go checks that the metadata below
# matches internal/ociimage. Multi-platform: docker buildx build
# --platform linux/amd64,linux/arm64,linux/arm/v7 .

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG TARGETVARIANT=
RUN GOARM="${TARGETVARIANT#v}" CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
      go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mcpedge ./cmd/mcpedge \
 && go run ./deploy/mkimage rootfs /rootfs

FROM scratch
ARG VERSION=dev
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/data /data
COPY --from=build /out/mcpedge /mcpedge
WORKDIR /data
USER 65532:65532
EXPOSE 8080/tcp
VOLUME ["/data"]
LABEL org.opencontainers.image.title="mcpedge" \
      org.opencontainers.image.description="A secure, observable gateway for Model Context Protocol servers" \
      org.opencontainers.image.version="${VERSION}"
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/mcpedge", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/mcpedge"]
CMD ["serve", "--config", "/etc/mcpedge/mcpedge.toml"]
