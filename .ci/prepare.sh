#!/usr/bin/env bash
# Builds the real third-party servers the tests run, from their Go modules at pinned
# versions, into $CLEAN_REGISTRY_CACHE (default ~/.cache/clean-registry): the
# distribution registry, versitygw (S3) and fake-gcs-server (GCS). Tests build them on
# demand too and start their own instances on loopback; this builds them once, up
# front, so that no test waits on a build. Cached builds are reused.
set -euo pipefail
cache="${CLEAN_REGISTRY_CACHE:-$HOME/.cache/clean-registry}"

build() { # dir-name module@version binary
  local dir="$cache/$1" bin="$cache/$1/$3"
  if [ -x "$bin" ]; then echo "cached: $bin"; return; fi
  mkdir -p "$dir"
  local tmp
  tmp=$(mktemp -d "$dir/.build-XXXXXX")
  echo "building $2 (a few minutes, once)"
  # Outside any module, so that no go.mod plays a part; static binaries.
  if ! (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS= GOWORK=off go install "$2"); then
    rm -rf "$tmp"; exit 1
  fi
  mv "$tmp/$3" "$bin" && rm -rf "$tmp"
  echo "built: $bin"
}

build registry-v3.1.2 github.com/distribution/distribution/v3/cmd/registry@v3.1.2 registry
build versitygw-v1.8.0 github.com/versity/versitygw/cmd/versitygw@v1.8.0 versitygw
build fake-gcs-server-v1.56.1 github.com/fsouza/fake-gcs-server@v1.56.1 fake-gcs-server
