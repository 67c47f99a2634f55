// Package blobcache is what clean-registry knows of a running registry's blob
// descriptor cache: which cache the registry's configuration makes it keep
// (Parse), what a run deleted that the cache may still claim (Outcome), and how
// to clear a redis cache of it (Redis.Clear) or what to tell the user when that
// fails (Advice). An in-memory cache can only be emptied by restarting the
// registry.
package blobcache

import (
	"sort"

	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// Outcome is what a run deleted that a running registry may still hold in its blob
// descriptor cache.
type Outcome struct {
	// Blobs are the digests ("sha256:...") whose content was deleted.
	Blobs []string
	// Links maps a repository to the digests whose revision or layer link it lost.
	Links map[string][]string
	// Repositories were removed or emptied.
	Repositories []string
	// Unknown: the run ended without saying what it deleted (a panic); assume the
	// worst.
	Unknown bool
}

// CacheStale reports whether a registry's blob descriptor cache may now claim
// something that is gone.
func (o Outcome) CacheStale() bool {
	return o.Unknown || len(o.Blobs) > 0 || len(o.Links) > 0 || len(o.Repositories) > 0
}

// OutcomeOf reads a run's report: nil (the scan failed) or a dry run deleted
// nothing. A run stopped part way reports its whole plan, any part of which may
// have been applied, so every planned deletion counts.
func OutcomeOf(rep *report.Report) Outcome {
	var o Outcome
	if rep == nil || rep.DryRun {
		return o
	}
	links := map[string]map[string]bool{}
	repos := map[string]bool{}
	for e := range rep.Entries() {
		switch e.Kind {
		case plan.Blob.String():
			o.Blobs = append(o.Blobs, e.Digest)
		case plan.Revision.String(), plan.LayerLink.String():
			if links[e.Repo] == nil {
				links[e.Repo] = map[string]bool{}
			}
			links[e.Repo][e.Digest] = true
		case plan.Repository.String():
			repos[e.Repo] = true
		}
	}
	if len(links) > 0 {
		o.Links = map[string][]string{}
		for r, ds := range links {
			for d := range ds {
				o.Links[r] = append(o.Links[r], d)
			}
			sort.Strings(o.Links[r])
		}
	}
	for r := range repos {
		o.Repositories = append(o.Repositories, r)
	}
	sort.Strings(o.Blobs)
	sort.Strings(o.Repositories)
	return o
}
