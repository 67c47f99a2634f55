// Package report turns a plan and its execution into human text and JSON.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/execute"
	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
)

// Count is a number of deletions and the bytes they free.
type Count struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

// RepoSummary is what one repository loses. Bytes counts the blobs deleted whose
// links (revisions and layer links) the repository lost: a blob shared by several
// repositories counts in each, and only once in the total.
type RepoSummary struct {
	Counts map[string]int `json:"counts"`
	Bytes  int64          `json:"bytes"`
	// TagsKept counts the tags that stay; TagsRetention those retention deletes.
	TagsKept      int `json:"tags_kept"`
	TagsRetention int `json:"tags_deleted_by_retention"`
}

// Entry is one deletion in the JSON report.
type Entry struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Repo   string `json:"repository,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest,omitempty"`
	Upload string `json:"upload,omitempty"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
	// Applied says whether the deletion was carried out: in a real run all are when
	// it completed, and when it stopped early exactly those it applied (also in the
	// phase it stopped in); in a dry run none.
	Applied *bool `json:"applied,omitempty"`
	// Uncertain marks a deletion not known applied whose batch was under way when
	// the run stopped (it failed, or a signal interrupted it): it may have been
	// applied in part, or whole. A rerun completes it.
	Uncertain bool `json:"uncertain,omitempty"`
}

// Phases are the wall-clock seconds of a run's parts.
type Phases struct {
	// Scan lists the storage, reads its links and manifests.
	Scan float64 `json:"scan"`
	// Plan decides, and reads the sizes and times of what it would delete.
	Plan float64 `json:"plan"`
	// Delete applies the plan (zero in a dry run).
	Delete float64 `json:"delete"`
}

// Online is what an online run did beside its deletions.
type Online struct {
	// Run names the run's quarantine (clean-registry/quarantine/RUN).
	Run string `json:"run"`
	// Quarantined counts the files moved out of the registry's sight.
	Quarantined int `json:"quarantined"`
	// Restored are the files put back because the live registry needed them.
	Restored []Restored `json:"restored"`
	// Recovered names earlier runs' quarantines this run verified and purged (a run
	// that stopped before it could).
	Recovered []string `json:"recovered,omitempty"`
	// SettleSeconds is the wait before the verification; VerifySeconds the
	// verification, put-backs included; PurgeSeconds the quarantine's deletion.
	SettleSeconds float64 `json:"settle_seconds"`
	VerifySeconds float64 `json:"verify_seconds"`
	PurgeSeconds  float64 `json:"purge_seconds"`
	// DowntimeSeconds is how long the registry did not serve (a restart for its
	// in-memory cache, Docker targets only).
	DowntimeSeconds float64 `json:"downtime_seconds"`
	// RestartRequired says the registry keeps an in-memory blob descriptor cache
	// that may name deleted blobs and that this run could not restart: restart it
	// before the next push.
	RestartRequired bool `json:"restart_required"`
}

// Trash is where a run that keeps what it deletes put it.
type Trash struct {
	Run     string    `json:"run"`
	Expires time.Time `json:"expires"`
	Files   int       `json:"files"`
}

// Restored is one file an online run put back.
type Restored struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Subject string `json:"subject"`
	Why     string `json:"why"`
}

// Report is the outcome of one run.
type Report struct {
	Storage string `json:"storage"`
	DryRun  bool   `json:"dry_run"`
	// Completed is false when the run stopped early (see Error).
	Completed bool   `json:"completed"`
	Error     string `json:"error,omitempty"`
	// Stage names where a run that stopped early stopped: "command line", "target",
	// "lock", "scan", "delete".
	Stage   string `json:"stage,omitempty"`
	Scanned int64  `json:"files_scanned"`
	Applied int    `json:"deletions_applied"`
	// Uncertain counts the deletions marked uncertain (see Entry).
	Uncertain    int                     `json:"deletions_uncertain,omitempty"`
	Total        Count                   `json:"total"`
	ByKind       map[string]Count        `json:"by_kind"`
	ByRepository map[string]*RepoSummary `json:"by_repository"`
	// Kept counts what stays once the plan is applied.
	Kept struct {
		Repositories int `json:"repositories"`
		Tags         int `json:"tags"`
		Revisions    int `json:"revisions"`
		Blobs        int `json:"blobs"`
		// Bytes weighs the kept blobs: stored sizes where the storage told them, else
		// the sizes their manifests declare (see plan.Plan.KeptBytes).
		Bytes int64 `json:"bytes"`
		// UnknownSizes counts kept blobs whose size neither tells (not in Bytes).
		UnknownSizes int `json:"unknown_sizes,omitempty"`
	} `json:"kept"`
	Problems []inventory.Problem `json:"problems"`
	// Settled are what an online run's scan saw of the registry's writes under way,
	// finished by the end of the run (inventory.Settled): not problems, and not
	// counted in the exit status or the metrics' problems.
	Settled []inventory.Problem `json:"settled,omitempty"`
	// Failures are per-repository errors (no such repository or tag): the run goes
	// on, and the exit status is 1.
	Failures []string         `json:"failures"`
	Notes    []string         `json:"notes,omitempty"`
	Requests map[string]int64 `json:"requests,omitempty"`
	Seconds  float64          `json:"seconds"`
	// Phases splits Seconds: what bounds a run (listing, reading or deleting) tells
	// an operator where to look, e.g. at --jobs or at the storage.
	Phases Phases `json:"phases"`
	// Online says what an online run's quarantine did; nil for an offline run.
	Online *Online `json:"online,omitempty"`
	// Trash says where what the run deleted waits (--keep-deleted); nil when it was
	// deleted for good.
	Trash *Trash `json:"trash,omitempty"`
	// TrashPurged names the trash of earlier runs that expired and was purged.
	TrashPurged []string `json:"trash_purged,omitempty"`
	// KeepDeleted is how long the run keeps what it deletes in its trash
	// (--keep-deleted, as "7d"); empty: deleted for good.
	KeepDeleted string `json:"keep_deleted,omitempty"`

	// plan is kept to stream its deletions into JSON rather than hold them twice.
	plan *plan.Plan
	// applied are the deletions a real run carried out, in plan order; uncertain
	// those it may have carried out in part.
	applied, uncertain []execute.Range
}

// SetApplied records what a real run carried out.
func (r *Report) SetApplied(res execute.Result) {
	r.Applied, r.applied, r.uncertain = res.Done, res.Applied, res.Uncertain
	r.Uncertain = 0
	for _, rg := range res.Uncertain {
		r.Uncertain += rg.End - rg.Start
	}
}

// New summarises a plan over an inventory.
func New(inv *inventory.Inventory, p *plan.Plan, dryRun bool) *Report {
	r := &Report{
		Storage:      inv.Storage,
		DryRun:       dryRun,
		Scanned:      inv.Files,
		plan:         p,
		ByKind:       map[string]Count{},
		ByRepository: map[string]*RepoSummary{},
		Problems:     inv.Problems,
		Failures:     p.Failures,
		Notes:        p.Notes,
	}
	if r.Problems == nil {
		r.Problems = []inventory.Problem{}
	}
	if r.Failures == nil {
		r.Failures = []string{}
	}
	sort.Slice(r.Problems, func(i, j int) bool { return r.Problems[i].Path < r.Problems[j].Path })
	r.Kept.Revisions, r.Kept.Blobs = p.KeptRevisions, p.KeptBlobs
	r.Kept.Bytes, r.Kept.UnknownSizes = p.KeptBytes, p.KeptUnsized
	removedRepos := map[string]bool{}
	for d := range p.All() {
		if d.Kind == plan.Repository {
			removedRepos[d.Repo] = true
		}
		kind, bytes := d.Kind.String(), max(d.Bytes, 0)
		c := r.ByKind[kind]
		c.Count++
		c.Bytes += bytes
		r.ByKind[kind] = c
		r.Total.Count++
		r.Total.Bytes += bytes
		if d.Repo != "" {
			rs := r.ByRepository[d.Repo]
			if rs == nil {
				rs = &RepoSummary{Counts: map[string]int{}}
				r.ByRepository[d.Repo] = rs
			}
			rs.Counts[kind]++
			if d.Reason == plan.Retention {
				rs.TagsRetention++
			}
			if d.Kind == plan.Revision || d.Kind == plan.LayerLink {
				rs.Bytes += d.LinkedBytes
			}
		}
	}
	for name, rs := range r.ByRepository {
		rs.TagsKept = p.KeptTags[name]
	}
	for name, n := range p.KeptTags {
		if !removedRepos[name] {
			r.Kept.Repositories++
			r.Kept.Tags += n
		}
	}
	return r
}

// Stopped is the report of a run that stopped before it had a plan: no deletion,
// the error and where it happened. With --json it is what a script gets to parse.
func Stopped(storage, stage string, err error) *Report {
	r := &Report{Storage: storage, Stage: stage, ByKind: map[string]Count{}, ByRepository: map[string]*RepoSummary{},
		Problems: []inventory.Problem{}, Failures: []string{}}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// Entries yields every planned deletion (applied ones, unless the run stopped early)
// in plan order.
func (r *Report) Entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		if r.plan == nil {
			return
		}
		for d := range r.plan.All() {
			if !yield(entry(d)) {
				return
			}
		}
	}
}

// entry is the JSON form of one deletion.
func entry(d plan.Deletion) Entry {
	e := Entry{Kind: d.Kind.String(), Path: d.Dir(), Repo: d.Repo, Tag: d.Tag, Upload: d.Upload,
		Bytes: max(d.Bytes, 0), Reason: d.Why()}
	if !d.Digest.IsZero() {
		e.Digest = d.Digest.String()
	}
	return e
}

// Line is the human line for one deletion, the same in a dry run ("would remove")
// and a real one ("removed"), like the seed's "removed directory P".
func Line(storageName string, d plan.Deletion, dryRun bool) string {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	what := fmt.Sprintf("%s %s: %s", d.Kind, d.Subject(), d.Why())
	if d.Kind == plan.Blob && d.Bytes >= 0 {
		what += ", " + Bytes(d.Bytes)
	}
	dir := d.Dir()
	if d.Kind == plan.Repository {
		dir += "/{_manifests,_layers,_uploads}"
	}
	return fmt.Sprintf("%s directory %s/%s (%s)", verb, strings.TrimSuffix(storageName, "/"), dir, what)
}

// Bytes formats a size in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// WriteText writes the summary for humans.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "Deleted"
	if r.KeepDeleted != "" {
		head = "Moved to trash (kept " + r.KeepDeleted + ")"
	}
	if r.DryRun {
		head = "Would delete (dry run: nothing was deleted)"
		if r.KeepDeleted != "" {
			head = "Would move to trash (dry run: nothing was moved)"
		}
	} else if !r.Completed {
		head = fmt.Sprintf("Planned (stopped early: %d of %d deletions applied)", r.Applied, r.Total.Count)
	}
	took := fmt.Sprintf("%.1fs: scan %.1fs, plan %.1fs", r.Seconds, r.Phases.Scan, r.Phases.Plan)
	if !r.DryRun {
		took += fmt.Sprintf(", deletions %.1fs", r.Phases.Delete)
	}
	if r.Total.Count == 0 {
		fmt.Fprintf(w, "Nothing to delete in %s (%d files scanned; %s): %s kept.\n", r.Storage, r.Scanned, took, r.kept())
	} else {
		fmt.Fprintf(w, "%s, in %s (%d files scanned; %s):\n", head, r.Storage, r.Scanned, took)
		fmt.Fprintln(tw, "\tkind\tcount\tbytes\t")
		for _, k := range plan.Kinds {
			c := r.ByKind[k.String()]
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t\n", k, c.Count, Bytes(c.Bytes))
		}
		fmt.Fprintf(tw, "\ttotal\t%d\t%s\t\n", r.Total.Count, Bytes(r.Total.Bytes))
		tw.Flush()
	}
	r.writeTrash(w)
	if len(r.ByRepository) > 0 {
		fmt.Fprintln(w, "Per repository (bytes: deleted blobs it linked; shared blobs count in each):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  repository\ttags\t(retention)\ttags kept\thistory\trevisions\tlayer-links\tuploads\tremoved\tbytes")
		names := make([]string, 0, len(r.ByRepository))
		for n := range r.ByRepository {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			rs := r.ByRepository[n]
			c := rs.Counts
			removed := ""
			if c["repository"] > 0 {
				removed = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", n, c["tag"], rs.TagsRetention, rs.TagsKept,
				c["tag-history"], c["revision"], c["layer-link"], c["upload"], removed, Bytes(rs.Bytes))
		}
		tw.Flush()
	}
	r.writeOnline(w)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
	if len(r.Settled) > 0 {
		fmt.Fprintf(w, "Writes of the registry under way during the scan, finished since (%d, not problems):\n", len(r.Settled))
		for _, p := range r.Settled {
			fmt.Fprintf(w, "  %s: %s: %s\n", p.Kind, p.Path, p.Detail)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "Problems found in the storage (%d):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s: %s: %s\n", p.Kind, p.Path, p.Detail)
		}
	}
	if len(r.Requests) > 0 {
		keys := make([]string, 0, len(r.Requests))
		var total int64
		for k, v := range r.Requests {
			keys = append(keys, k)
			total += v
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Requests[k]))
		}
		fmt.Fprintf(w, "Storage requests: %d (%s)\n", total, strings.Join(parts, ", "))
	}
	r.writeOutcome(w)
}

// kept says what stays: "3 repositories, 7 tags, 12 manifest revisions, 40 blobs of
// 1.2 GiB" (and how many blobs are not weighed, if any).
func (r *Report) kept() string {
	s := fmt.Sprintf("%d repositories, %d tags, %d manifest revisions, %d blobs of %s",
		r.Kept.Repositories, r.Kept.Tags, r.Kept.Revisions, r.Kept.Blobs, Bytes(r.Kept.Bytes))
	if n := r.Kept.UnknownSizes; n > 0 {
		s += fmt.Sprintf(" (and %d of unknown size)", n)
	}
	return s
}

// writeOutcome ends the text with the space the run reclaimed and what remains.
func (r *Report) writeOutcome(w io.Writer) {
	if r.Total.Count == 0 {
		return
	}
	freed := "Freed"
	if r.KeepDeleted != "" {
		freed = "Moved to trash"
	}
	switch {
	case r.DryRun:
		freed = "Would free"
		if r.KeepDeleted != "" {
			freed = "Would move to trash"
		}
		fmt.Fprintf(w, "%s %s in %d deletions; %s would remain.\n", freed, Bytes(r.Total.Bytes), r.Total.Count, r.kept())
	case !r.Completed:
		under := ""
		if r.Uncertain > 0 {
			under = fmt.Sprintf("; %d more were under way, and may have been applied in part", r.Uncertain)
		}
		fmt.Fprintf(w, "%s %s in %d of %d deletions before the run stopped%s (a rerun completes the cleaning).\n",
			freed, Bytes(r.appliedBytes()), r.Applied, r.Total.Count, under)
	default:
		fmt.Fprintf(w, "%s %s in %d deletions; %s remain.\n", freed, Bytes(r.Total.Bytes), r.Total.Count, r.kept())
	}
}

// appliedBytes sums the bytes of the deletions a real run applied.
func (r *Report) appliedBytes() int64 {
	var n int64
	if r.plan == nil {
		return 0
	}
	for _, rg := range r.applied {
		for i := rg.Start; i < rg.End; i++ {
			n += max(r.plan.At(i).Bytes, 0)
		}
	}
	return n
}

// WriteJSON writes the whole report as one JSON document, its "deletions" streamed
// one per line so that a plan of millions is never held twice in memory.
func (r *Report) WriteJSON(w io.Writer) error {
	head, err := json.Marshal(r)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"deletions":[`)
	if r.plan != nil {
		ranges, uncertain := r.applied, r.uncertain
		for i := range r.plan.Len() {
			e := entry(r.plan.At(i))
			applied := !r.DryRun && inRanges(&ranges, i)
			e.Applied = &applied
			e.Uncertain = !r.DryRun && inRanges(&uncertain, i)
			line, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString("\n")
			bw.Write(line)
		}
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

// inRanges tells whether i is in one of rs, sorted ranges that it consumes as i
// grows.
func inRanges(rs *[]execute.Range, i int) bool {
	for len(*rs) > 0 && (*rs)[0].End <= i {
		*rs = (*rs)[1:]
	}
	return len(*rs) > 0 && (*rs)[0].Start <= i
}

func (r *Report) writeOnline(w io.Writer) {
	o := r.Online
	if o == nil {
		return
	}
	for _, run := range o.Recovered {
		fmt.Fprintf(w, "Online: verified and purged the quarantine %s, which an interrupted run left.\n", run)
	}
	if o.Run != "" {
		fmt.Fprintf(w, "Online: %d files moved to the quarantine %s, put back %d, the rest deleted (settle %.1fs, verification %.1fs, purge %.1fs",
			o.Quarantined, o.Run, len(o.Restored), o.SettleSeconds, o.VerifySeconds, o.PurgeSeconds)
		if o.DowntimeSeconds > 0 {
			fmt.Fprintf(w, ", registry restarted: %.1fs without service", o.DowntimeSeconds)
		}
		fmt.Fprintln(w, ").")
	}
	for _, rs := range o.Restored {
		fmt.Fprintf(w, "  put back %s %s: %s\n", rs.Kind, rs.Subject, rs.Why)
	}
	if o.RestartRequired {
		fmt.Fprintln(w, "Restart the registry before the next push: its in-memory blob descriptor cache may name deleted blobs.")
	}
}

// writeTrash says where the bytes went when the run keeps what it deletes, and
// which expired trash it purged.
func (r *Report) writeTrash(w io.Writer) {
	for _, run := range r.TrashPurged {
		fmt.Fprintf(w, "Trash: purged %s, which expired.\n", run)
	}
	if r.KeepDeleted == "" {
		return
	}
	if r.DryRun {
		fmt.Fprintf(w, "Bytes: would be moved to trash, freed when it expires (in %s).\n", r.KeepDeleted)
		return
	}
	if r.Trash == nil {
		fmt.Fprintln(w, "Bytes: moved to trash, freed when it expires.")
		return
	}
	fmt.Fprintf(w, "Bytes: moved to trash, freed when it expires: run %s, %d files, expires %s.\n",
		r.Trash.Run, r.Trash.Files, r.Trash.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Undo: clean-registry restore TARGET %s [REPOSITORY[:TAG]...] (TARGET: this run's --root, --config or container).\n", r.Trash.Run)
}
