# Known's container image: a static binary on a minimal non-root base.
#   docker build -t known .
#   docker run -p 127.0.0.1:8080:8080 -v known-data:/data known      # the embedded store
# Build from a git clone: the toolchain stamps the commit into the binary (`known -version`,
# known_build_info). A git worktree's .git is a file that points outside the build context: clone
# it first. dockerfile_test.go runs this file's `go build` command: keep it a plain command line.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo: the embedded store's SQLite is pure Go), no paths of the build machine, no
# symbol table; -buildvcs=true stamps the commit whatever GOFLAGS says.
RUN CGO_ENABLED=0 go build -buildvcs=true -trimpath -ldflags=-s -o /out/known ./server
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# CA certificates (for customers' user APIs and MongoDB over TLS) come with the base image.
COPY --from=build /out/known /known
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV KNOWN_ADDR=0.0.0.0:8080 KNOWN_DATA_DIR=/data
# The embedded store and its generated KNOWN_SECRET live here; with KNOWN_MONGODB_URI and
# KNOWN_SECRET set, nothing is written to it.
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/known"]
