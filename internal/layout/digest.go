// Package layout is the distribution registry's storage path scheme as pure functions:
// where blobs, links, tags and uploads live, and how to read a path or a link file back.
// It mirrors upstream registry/storage/paths.go.
package layout

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	godigest "github.com/opencontainers/go-digest"
)

// Digest is a sha256 content digest held as a fixed-size array, so that sets of
// millions of digests stay compact and hash fast. Other algorithms are rare in
// registries; the inventory treats them as opaque and never deletes them.
type Digest [32]byte

// ErrBadDigest reports a digest string that is not a valid sha256 digest.
var ErrBadDigest = errors.New("not a sha256 digest")

// ParseDigest reads "sha256:<64 lowercase hex>". Any other algorithm or form is an error.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if err := godigest.Digest(s).Validate(); err != nil {
		return d, fmt.Errorf("%w: %q: %v", ErrBadDigest, truncate(s), err)
	}
	alg, h, _ := strings.Cut(s, ":")
	if alg != string(godigest.SHA256) {
		return d, fmt.Errorf("%w: %q: algorithm %s", ErrBadDigest, truncate(s), alg)
	}
	return ParseHex(h)
}

// ParseHex reads the 64 lowercase hex characters of a sha256 digest, as found in paths.
func ParseHex(h string) (Digest, error) {
	var d Digest
	if len(h) != 64 || strings.ToLower(h) != h {
		return d, fmt.Errorf("%w: %q", ErrBadDigest, truncate(h))
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%w: %q", ErrBadDigest, truncate(h))
	}
	return d, nil
}

// Hex is the 64-character lowercase hex form.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// String is the canonical "sha256:<hex>" form.
func (d Digest) String() string { return "sha256:" + d.Hex() }

// Short is "sha256:" and the first 12 hex digits, for human output.
func (d Digest) Short() string { return "sha256:" + d.Hex()[:12] }

// IsZero reports whether d is the zero value (no digest).
func (d Digest) IsZero() bool { return d == Digest{} }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
