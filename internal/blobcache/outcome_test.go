package blobcache

import (
	"reflect"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

func TestOutcomeOf(t *testing.T) {
	if OutcomeOf(nil).CacheStale() {
		t.Error("no report: nothing deleted")
	}
	d1, d2, d3, d4, d5 := digest(1), digest(2), digest(3), digest(4), digest(5)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	old := inventory.ToTime(now.Add(-48 * time.Hour))
	pol := plan.Policy{Grace: time.Hour, UploadAge: 24 * time.Hour, Now: now}
	// planOf plans the cleaning of a registry whose repository a has tag t on manifest
	// d4 (config d5, both kept) and once on d1, a history entry the plan deletes. With
	// links, a also links manifest d2, untagged, and blob d3, which nothing references,
	// and repository b is empty: the plan deletes both links, blob d3 and b. With an
	// upload, a holds an abandoned one. want are the kinds the plan must hold.
	planOf := func(links, upload bool, want ...plan.Kind) (*inventory.Inventory, *plan.Plan) {
		t.Helper()
		b := inventory.NewBuilder("test")
		b.Blob(d4, 100, old)
		b.Blob(d5, 10, old)
		if links {
			b.Blob(d3, 10, old)
		}
		b.BlobsDone()
		b.Revision("a", d4, old)
		b.Layer("a", d5, old)
		b.TagCurrent("a", "t", d4, old)
		b.TagIndex("a", "t", d4, old)
		b.TagIndex("a", "t", d1, old)
		if links {
			b.Revision("a", d2, old)
			b.Layer("a", d3, old)
			b.Repo("b", nil)
		}
		if upload {
			b.Upload("a", "u", layout.StartedAt, now.Add(-48*time.Hour))
		}
		inv := b.Build()
		inv.SetManifest(d4, &manifest.Manifest{Blobs: []layout.Digest{d5}}, nil)
		p := plan.Make(inv, pol)
		var kinds []plan.Kind
		for d := range p.All() {
			kinds = append(kinds, d.Kind)
		}
		if !reflect.DeepEqual(kinds, want) {
			t.Fatalf("planned %v, want %v", kinds, want)
		}
		return inv, p
	}
	inv, p := planOf(true, false, plan.TagHistory, plan.Revision, plan.LayerLink, plan.Blob, plan.Repository)
	o := OutcomeOf(report.New(inv, p, false))
	if !reflect.DeepEqual(o.Blobs, []string{d3.String()}) || !reflect.DeepEqual(o.Links, map[string][]string{"a": {d2.String(), d3.String()}}) ||
		!reflect.DeepEqual(o.Repositories, []string{"b"}) || !o.CacheStale() {
		t.Errorf("outcome %+v", o)
	}
	if OutcomeOf(report.New(inv, p, true)).CacheStale() {
		t.Error("a dry run deletes nothing")
	}
	inv, tagsOnly := planOf(false, true, plan.TagHistory, plan.Upload)
	if OutcomeOf(report.New(inv, tagsOnly, false)).CacheStale() {
		t.Error("tag history and uploads are not cached")
	}
}

func digest(n byte) layout.Digest {
	var d layout.Digest
	d[31] = n
	return d
}
