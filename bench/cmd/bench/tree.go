package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/clean-registry/clean-registry/v2/bench/upstream"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
)

// Listing is every file and directory of a tree, relative to its root, sorted.
type Listing struct {
	Root        string
	Files, Dirs []string
}

func list(root string) (*Listing, error) {
	l := &Listing{Root: root}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := p[len(root)+1:]
		if d.IsDir() {
			l.Dirs = append(l.Dirs, rel)
		} else {
			l.Files = append(l.Files, rel)
		}
		return nil
	})
	// WalkDir visits in lexical order of each directory, not of whole paths.
	sort.Strings(l.Files)
	sort.Strings(l.Dirs)
	return l, err
}

func (l *Listing) equal(o *Listing) bool {
	return slices.Equal(l.Files, o.Files) && slices.Equal(l.Dirs, o.Dirs)
}

// minus is a - b for sorted slices.
func minus(a, b []string) []string {
	var out []string
	j := 0
	for _, s := range a {
		for j < len(b) && b[j] < s {
			j++
		}
		if j < len(b) && b[j] == s {
			continue
		}
		out = append(out, s)
	}
	return out
}

// byDepthDeepestFirst groups directories by depth, deepest group first: the
// directories of one group can be removed in parallel once the deeper ones are gone.
func byDepthDeepestFirst(dirs []string) [][]string {
	groups := map[int][]string{}
	for _, d := range dirs {
		n := strings.Count(d, "/")
		groups[n] = append(groups[n], d)
	}
	depths := make([]int, 0, len(groups))
	for n := range groups {
		depths = append(depths, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(depths)))
	out := make([][]string, 0, len(depths))
	for _, n := range depths {
		out = append(out, groups[n])
	}
	return out
}

// refs are the manifests left in a tree, to pull: every tag and every revision.
func refs(l *Listing) []upstream.Ref {
	var out []upstream.Ref
	for _, f := range l.Files {
		info := layout.Classify(f)
		switch info.Kind {
		case layout.KindTagCurrentLink:
			out = append(out, upstream.Ref{Repo: info.Repo, Reference: info.Tag})
		case layout.KindRevisionLink:
			out = append(out, upstream.Ref{Repo: info.Repo, Reference: info.Digest.String()})
		}
	}
	return out
}

// Comparison says how the tree clean-registry left differs from upstream's.
type Comparison struct {
	// Aside counts the differences the two tools are meant to have, by class.
	Aside map[string]int
	// Failures are differences in blobs, revisions or tags, the first 20 of them.
	Failures []string
	Failed   int
}

func (c *Comparison) fail(format string, a ...any) {
	c.Failed++
	if len(c.Failures) < 20 {
		c.Failures = append(c.Failures, fmt.Sprintf(format, a...))
	}
}

// compare checks that clean-registry (cr) left the same blobs, revisions and tags as
// upstream (up). Tag history, _layers links and uploads differ by design; so do OCI
// 1.1 referrers whose subject is kept, which upstream, knowing no subject, deletes.
func compare(up, cr *Listing) Comparison {
	c := Comparison{Aside: map[string]int{}}
	crFiles := make(map[string]bool, len(cr.Files))
	for _, f := range cr.Files {
		crFiles[f] = true
	}
	onlyUp := minus(up.Files, cr.Files)
	onlyCr := minus(cr.Files, up.Files)

	// Referrers only clean-registry kept, and the blobs they hold.
	referrerBlobs := map[layout.Digest]bool{}
	for _, f := range onlyCr {
		info := layout.Classify(f)
		if info.Kind != layout.KindRevisionLink {
			continue
		}
		m, err := readManifest(cr.Root, info.Digest)
		switch {
		case err != nil:
			c.fail("revision kept only by clean-registry, unreadable: %s: %v", f, err)
		case m.Subject == nil:
			c.fail("revision kept only by clean-registry: %s", f)
		default:
			subject, err := layout.ParseDigest(m.Subject.Digest)
			if err != nil || !crFiles[layout.RevisionDir(info.Repo, subject)+"/link"] {
				c.fail("referrer kept by clean-registry although its subject is gone: %s", f)
				continue
			}
			c.Aside["referrers kept by subject (upstream ignores subject)"]++
			referrerBlobs[info.Digest] = true
			for _, d := range m.blobs() {
				referrerBlobs[d] = true
			}
		}
	}
	for _, f := range onlyCr {
		info := layout.Classify(f)
		switch info.Kind {
		case layout.KindRevisionLink:
			// counted above
		case layout.KindTagIndexLink:
			c.Aside["tag history links kept only by clean-registry"]++
		case layout.KindLayerLink:
			c.Aside["_layers links kept only by clean-registry"]++
		case layout.KindUploadFile:
			c.Aside["upload files kept only by clean-registry"]++
		case layout.KindBlobData:
			if referrerBlobs[info.Digest] {
				c.Aside["blobs of those referrers"]++
			} else {
				c.fail("blob kept only by clean-registry: %s", f)
			}
		default:
			c.fail("file kept only by clean-registry: %s", f)
		}
	}
	for _, f := range onlyUp {
		switch layout.Classify(f).Kind {
		case layout.KindTagIndexLink:
			c.Aside["tag history links deleted only by clean-registry"]++
		case layout.KindLayerLink:
			c.Aside["_layers links deleted only by clean-registry"]++
		case layout.KindUploadFile:
			c.Aside["abandoned upload files deleted only by clean-registry"]++
		default:
			c.fail("file deleted only by clean-registry: %s", f)
		}
	}
	return c
}

type manifestRefs struct {
	Config  *struct{ Digest string }  `json:"config"`
	Layers  []struct{ Digest string } `json:"layers"`
	Subject *struct{ Digest string }  `json:"subject"`
}

func (m manifestRefs) blobs() []layout.Digest {
	var out []layout.Digest
	if m.Config != nil {
		if d, err := layout.ParseDigest(m.Config.Digest); err == nil {
			out = append(out, d)
		}
	}
	for _, l := range m.Layers {
		if d, err := layout.ParseDigest(l.Digest); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func readManifest(root string, d layout.Digest) (manifestRefs, error) {
	var m manifestRefs
	b, err := os.ReadFile(filepath.Join(root, layout.BlobData(d)))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// planCheck checks a real run against the dry run's plan: every planned path is gone,
// and every deleted file lay inside a planned path (directories the run pruned because
// they became empty are not in the plan).
func planCheck(planned []string, deletedFiles []string, after *Listing) []string {
	var problems []string
	inPlan := make(map[string]bool, len(planned))
	for _, p := range planned {
		inPlan[p] = true
	}
	left := map[string]bool{}
	for _, f := range after.Files {
		left[f] = true
	}
	for _, d := range after.Dirs {
		left[d] = true
	}
	for _, p := range planned {
		if left[p] {
			problems = append(problems, "planned but still there: "+p)
		}
	}
	for _, f := range deletedFiles {
		ok := false
		for p := f; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			if inPlan[p] {
				ok = true
				break
			}
		}
		if !ok {
			problems = append(problems, "deleted but not planned by the dry run: "+f)
		}
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	return problems
}
