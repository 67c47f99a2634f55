#!/usr/bin/env bash
# Runs clean-registry on a small sample registry that the project generates: a few
# repositories (one nested) with tagged, overwritten and untagged images, a multi-arch
# index, referrers, a cosign-style signature tag and an abandoned upload. First a dry
# run (what would go, and why), then the real run, a rerun that finds nothing, and
# a check that every image left pulls whole.
#   scripts/sample.sh [DIR]     (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-$(mktemp -d)/registry}"

go build -o "${TMPDIR:-/tmp}/clean-registry" ./cmd/clean-registry
cr="${TMPDIR:-/tmp}/clean-registry"

echo "== generating a sample registry in $root"
go run ./bench/cmd/gentree -root "$root" -seed 7 -repos 4 -nested 0.3 -manifests 5 -layers 2 -tags 2 \
  -multiarch-every 2 -children 2 -overwritten 0.5 -referrers 0.3 -cosign 0.5 -uploads 0.5 -shared-pool 8 \
  -true-sizes # descriptors state the stored sizes: a registry whose images pull whole (check passes)

echo; echo "== dry run: what would be deleted, and why (--grace 0: the sample has no registry running)"
"$cr" --root "$root" --dry-run --grace 0

echo; echo "== the real run"
"$cr" --root "$root" --grace 0 -q --json > "$root.report.json"
echo "deleted $(grep -c '"kind"' "$root.report.json") objects; JSON report: $root.report.json"

echo; echo "== a rerun finds nothing left to do"
"$cr" --root "$root" --grace 0 --dry-run

echo; echo "== check: every tag that remains pulls whole"
"$cr" check --root "$root"
