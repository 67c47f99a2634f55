package plan

import (
	"sort"
	"strings"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
)

// retention returns the tags of r that the retention rule deletes, with why, among
// those not already gone. Tags
// pushed within the grace period stay whatever the rule says, as everything young
// does; a tag whose push time is unknown counts as pushed now.
func (m *marker) retention(r *inventory.Repo, gone map[string]bool) map[string]string {
	rule := m.pol.Retention.Match(r.Name)
	if rule == nil || len(r.Tags) == 0 {
		return nil
	}
	tags := m.tagBuf[:0]
	for name, t := range r.Tags {
		if gone[name] {
			continue // already going: a remnant, say, which must not rank as "pushed now"
		}
		pt := policy.Tag{Name: name}
		if t.HasCurrent && t.CurrentModTime != 0 {
			pt.Pushed, pt.Known = t.CurrentModTime.Std(), true
		}
		tags = append(tags, pt)
	}
	// The decisions do not depend on the order; the reasons' ordinals read better
	// from a stable one.
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	m.tagBuf = tags
	m.decisions = rule.Evaluate(m.pol.Now, tags, m.decisions)
	var deleted map[string]string
	for i := range tags {
		if m.decisions.Keep(i) || m.fresh(r.Tags[tags[i].Name].CurrentModTime) {
			continue
		}
		if deleted == nil {
			deleted = map[string]string{}
		}
		why := m.decisions.Reason(i)
		if tags[i].Known && !strings.Contains(why, "pushed") {
			why += "; pushed " + tags[i].Pushed.UTC().Format(time.RFC3339)
		}
		deleted[tags[i].Name] = why
	}
	return deleted
}

// signaturesGone returns the signature and attestation tags of r (cosign's
// sha256-<hex>.sig, .att, .sbom, the OCI referrers tag schema's sha256-<hex>) that
// go with their subject: a manifest r holds and this plan no longer keeps (marked
// is what it keeps), or, with DeleteOrphanSignatures, a manifest no repository of
// the registry holds. Young tags stay.
func (m *marker) signaturesGone(r *inventory.Repo, gone map[string]bool, marked idSet) map[string]Reason {
	var out map[string]Reason
	for name, t := range r.Tags {
		h, ok := policy.IsSignatureTag(name)
		if !ok || gone[name] || m.fresh(t.CurrentModTime) {
			continue
		}
		d, err := layout.ParseHex(h)
		if err != nil {
			continue
		}
		id, known := m.inv.Lookup(d)
		reason := Reason(0)
		switch {
		case known && r.Revisions.Has(id):
			if _, kept := marked[id]; !kept {
				reason = SignatureOfDeleted
			}
		case m.pol.DeleteOrphanSignatures && (!known || !m.held.Has(id)):
			reason = OrphanSignature
		}
		if reason != 0 {
			if out == nil {
				out = map[string]Reason{}
			}
			out[name] = reason
		}
	}
	return out
}
