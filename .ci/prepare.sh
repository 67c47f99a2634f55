#!/usr/bin/env bash
# Builds the real third-party servers the tests run, from their Go modules at pinned
# versions, into $CLEAN_REGISTRY_CACHE (default ~/.cache/clean-registry): the
# distribution registry, versitygw (S3), fake-gcs-server (GCS) and the Prometheus
# Pushgateway (metrics). Tests build them on demand too and start their own
# instances on loopback; this builds them once, up front, so that no test waits on a
# build. Cached builds are reused.
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

# build_in_module is build for a module whose `go install MODULE@VERSION` fails: the
# go command then looks the module's version list up (for a deprecation notice),
# and a proxy that refuses the list (403) fails the install. A throwaway module
# requiring MODULE@VERSION selects the same dependencies (MODULE's go.mod) without
# that look-up.
build_in_module() { # dir-name module@version binary
  local dir="$cache/$1" bin="$cache/$1/$3"
  if [ -x "$bin" ]; then echo "cached: $bin"; return; fi
  mkdir -p "$dir"
  local tmp
  tmp=$(mktemp -d "$dir/.build-XXXXXX")
  echo "building $2 (a minute, once)"
  local gov; gov=$(go env GOVERSION); gov=${gov#go}; gov=${gov%% *}
  printf 'module build\n\ngo %s\n\nrequire %s %s\n' "$gov" "${2%@*}" "${2##*@}" >"$tmp/go.mod"
  if ! (cd "$tmp" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off go build -o "$tmp/$3" "${2%@*}"); then
    rm -rf "$tmp"; exit 1
  fi
  mv "$tmp/$3" "$bin" && rm -rf "$tmp"
  echo "built: $bin"
}

build registry-v3.1.2 github.com/distribution/distribution/v3/cmd/registry@v3.1.2 registry
build versitygw-v1.8.0 github.com/versity/versitygw/cmd/versitygw@v1.8.0 versitygw
build fake-gcs-server-v1.56.1 github.com/fsouza/fake-gcs-server@v1.56.1 fake-gcs-server
build_in_module pushgateway-v1.11.1 github.com/prometheus/pushgateway@v1.11.1 pushgateway
