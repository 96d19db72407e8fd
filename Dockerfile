# hlbridge as a container image: docker build -t hlbridge .
#
# Build stage: the official Go image of the version go.mod asks for (it sets
# GOTOOLCHAIN=local, so the build never tries to fetch another toolchain).
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, in a layer of their own: it is rebuilt only when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary (the SQLite driver, modernc.org/sqlite, is pure Go),
# so it runs on an image with no libc. -trimpath and -s -w: no build paths, no
# symbol or debug tables (a smaller, reproducible binary).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /hlbridge ./cmd/hlbridge
# The volume's mount point, made here because the final image has no shell.
RUN mkdir /data

# Final stage: distroless "static" has CA certificates (HighLevel's API is HTTPS),
# tzdata and /etc/passwd with a "nonroot" user (65532), and no shell or package
# manager to attack.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hlbridge /hlbridge
# /data must belong to nonroot, or the default SQLite database cannot be written
# (a new volume copies the mount point's owner).
COPY --from=build --chown=65532:65532 /data /data
# The default store: SQLite in the volume, so the queue survives a new container.
# Set BRIDGE_DATABASE=postgres://... to use PostgreSQL instead.
ENV BRIDGE_DATABASE=/data/hlbridge.db
VOLUME /data
# BRIDGE_ADDR defaults to :8080.
EXPOSE 8080
USER nonroot
# Docker marks the container unhealthy when /readyz says not ready (the store
# does not answer, or WordPress has not answered for a while): hlbridge health
# asks it over loopback, with no shell or curl in the image.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 CMD ["/hlbridge", "health"]
# Exec form: hlbridge is PID 1 and gets SIGTERM directly for its graceful shutdown.
ENTRYPOINT ["/hlbridge"]
