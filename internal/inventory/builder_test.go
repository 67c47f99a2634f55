package inventory

import (
	"errors"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
)

func digestOf(b ...byte) layout.Digest {
	var d layout.Digest
	copy(d[:], b)
	return d
}

func TestBuilderInternsDigests(t *testing.T) {
	b := NewBuilder("test")
	// Blobs arrive out of order and one twice, as overlapping listings can give them.
	for _, d := range []layout.Digest{digestOf(9, 1), digestOf(1, 2), digestOf(9, 0), digestOf(1, 2)} {
		b.Blob(d, 10, 0)
	}
	b.BlobsDone()
	missing := digestOf(5)
	b.Layer("r", digestOf(9, 0), 1)
	b.Layer("r", missing, 2)
	b.Layer("r", digestOf(9, 0), 3) // the same link twice: the first counts
	b.Revision("r", digestOf(1, 2), 0)
	b.TagCurrent("r", "t", digestOf(1, 2), 0)
	b.TagIndex("r", "t", missing, 0)
	inv := b.Build()

	if inv.NumBlobs() != 3 {
		t.Fatalf("blobs = %d, want 3 (one duplicate)", inv.NumBlobs())
	}
	for i := 1; i < len(inv.Blobs); i++ {
		a, c := inv.Blobs[i-1].Digest, inv.Blobs[i].Digest
		if string(a[:]) >= string(c[:]) {
			t.Fatalf("blob table not sorted at %d", i)
		}
	}
	id, ok := inv.Lookup(missing)
	if !ok || inv.IsBlob(id) || int(id) != inv.NumBlobs() || inv.Digest(id) != missing {
		t.Fatalf("missing digest: id %d ok %v", id, ok)
	}
	if again := inv.Intern(missing); again != id {
		t.Fatalf("interned twice: %d, %d", id, again)
	}
	r := inv.Repos["r"]
	if len(r.Layers) != 2 || r.Layers[0].ID > r.Layers[1].ID {
		t.Fatalf("layers = %+v", r.Layers)
	}
	l := r.Layers.Find(inv.Intern(digestOf(9, 0)))
	if l == nil || l.ModTime != 1 {
		t.Fatalf("duplicate link: got %+v, want the first (time 1)", l)
	}
	if tg := r.Tags["t"]; !tg.HasCurrent || inv.Digest(tg.Current) != digestOf(1, 2) || !tg.Index.Has(id) {
		t.Fatalf("tag = %+v", tg)
	}
	if _, ok := inv.Lookup(digestOf(7)); ok {
		t.Fatal("an unknown digest was found")
	}
}

func TestManifestArena(t *testing.T) {
	b := NewBuilder("test")
	for i := byte(1); i <= 4; i++ {
		b.Blob(digestOf(i), 1, 0)
	}
	inv := b.Build()
	inv.SetManifest(digestOf(1), &manifest.Manifest{Blobs: []layout.Digest{digestOf(2), digestOf(3)}}, nil)
	inv.SetManifest(digestOf(4), &manifest.Manifest{Children: []layout.Digest{digestOf(1), digestOf(6)}, Subject: digestOf(2)}, nil)
	bad := errors.New("bad")
	inv.SetManifest(digestOf(3), nil, bad)

	m, ok := inv.Manifest(inv.Intern(digestOf(1)))
	if !ok || m.Err != nil || len(m.Blobs) != 2 || len(m.Children) != 0 || m.HasSubject {
		t.Fatalf("manifest 1 = %+v", m)
	}
	m, _ = inv.Manifest(inv.Intern(digestOf(4)))
	if len(m.Blobs) != 0 || len(m.Children) != 2 || inv.Digest(m.Children[1]) != digestOf(6) || inv.IsBlob(m.Children[1]) ||
		!m.HasSubject || inv.Digest(m.Subject) != digestOf(2) {
		t.Fatalf("manifest 4 = %+v", m)
	}
	if m, _ := inv.Manifest(inv.Intern(digestOf(3))); m.Err != bad {
		t.Fatalf("manifest 3 = %+v", m)
	}
	if _, ok := inv.Manifest(inv.Intern(digestOf(2))); ok {
		t.Fatal("a manifest never read is reported read")
	}
	// A view handed out earlier stays valid while the arena grows.
	m1, _ := inv.Manifest(inv.Intern(digestOf(1)))
	for i := 0; i < 100; i++ {
		inv.SetManifest(digestOf(50, byte(i)), &manifest.Manifest{Blobs: []layout.Digest{digestOf(4)}}, nil)
	}
	if inv.Digest(m1.Blobs[0]) != digestOf(2) {
		t.Fatal("an earlier view changed")
	}
}

func TestIDSet(t *testing.T) {
	s := newIDSet(10)
	for _, id := range []ID{0, 9, 63, 64, 1000} {
		s.Add(id)
	}
	for _, id := range []ID{0, 9, 63, 64, 1000} {
		if !s.Has(id) {
			t.Errorf("%d missing", id)
		}
	}
	for _, id := range []ID{1, 65, 999, 5000} {
		if s.Has(id) {
			t.Errorf("%d present", id)
		}
	}
}
