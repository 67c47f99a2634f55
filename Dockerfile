# clean-registry in a container image of its own: a static binary and nothing else.
# No base image is pulled, so this builds anywhere, offline included:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o build/clean-registry ./cmd/clean-registry
#   cp /etc/ssl/certs/ca-certificates.crt build/
#   docker build -f Dockerfile -t clean-registry build/
#
# The build context is build/ (not the repository); the CA bundle serves object
# storage over HTTPS. See docs/docker.md for running it against a registry.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY clean-registry /usr/local/bin/clean-registry
ENTRYPOINT ["/usr/local/bin/clean-registry"]
