package policy

// IsSignatureTag reports whether tag names an artifact attached to another
// manifest by the tag naming convention rather than by a reference: cosign's
// "sha256-<hex>.sig", ".att" and ".sbom" (and any other ".<suffix>"), and the OCI
// referrers tag schema's fallback tag "sha256-<hex>", where <hex> is 64 lowercase
// hexadecimal digits. It returns the subject's hex digest (without "sha256:"),
// a substring of tag.
//
// Such tags are never selected by a rule: they are kept by the evaluation, and
// the planner decides on them by their subject.
func IsSignatureTag(tag string) (hex string, ok bool) {
	const prefix = "sha256-"
	const n = len(prefix) + 64
	if len(tag) < n || tag[:len(prefix)] != prefix {
		return "", false
	}
	for i := len(prefix); i < n; i++ {
		if c := tag[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	if len(tag) > n && (tag[n] != '.' || len(tag) == n+1) {
		return "", false
	}
	return tag[len(prefix):n], true
}
