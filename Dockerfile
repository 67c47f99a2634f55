# clean-registry in a container image of its own: a static binary and nothing else.
# No base image is pulled (there is none to pull: FROM scratch), so this builds
# anywhere, offline included. From the repository's root:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/clean-registry/clean-registry/v2/internal/cli.Version=$(git describe --tags --always --dirty)" -o build/clean-registry ./cmd/clean-registry && cp /etc/ssl/certs/ca-certificates.crt build/
#   docker build -t clean-registry .
#
# .dockerignore sends only build/clean-registry and build/ca-certificates.crt (the
# CA bundle serves object storage over HTTPS). Run it with the engine's socket for
# a Docker target, or the registry's storage for --root (docs/docker.md):
#
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock -v registry-data:/var/lib/registry clean-registry registry
#   docker run --rm -v registry-data:/var/lib/registry clean-registry -n --root /var/lib/registry
FROM scratch
COPY build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY build/clean-registry /usr/local/bin/clean-registry
ENTRYPOINT ["/usr/local/bin/clean-registry"]
