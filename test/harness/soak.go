package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// SoakReport is the part of a clean-registry --json report a soak reads (parsed here,
// not with the tool's own types, like everything the harness checks).
type SoakReport struct {
	Completed bool   `json:"completed"`
	Stage     string `json:"stage"`
	Error     string `json:"error"`
	Applied   int    `json:"deletions_applied"`
	ByKind    map[string]struct {
		Count int `json:"count"`
	} `json:"by_kind"`
	Problems  []SoakProblem  `json:"problems"`
	Settled   []SoakProblem  `json:"settled"`
	Online    *SoakOnline    `json:"online"`
	Deletions []SoakDeletion `json:"deletions"`
}

// SoakProblem is one problem a run found in the storage.
type SoakProblem struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// SoakDeletion is one deletion a run reported.
type SoakDeletion struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Repo   string `json:"repository"`
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

// SoakOnline is a report's online section.
type SoakOnline struct {
	Run             string         `json:"run"`
	Quarantined     int            `json:"quarantined"`
	Restored        []SoakRestored `json:"restored"`
	Recovered       []string       `json:"recovered"`
	SettleSeconds   float64        `json:"settle_seconds"`
	VerifySeconds   float64        `json:"verify_seconds"`
	PurgeSeconds    float64        `json:"purge_seconds"`
	DowntimeSeconds float64        `json:"downtime_seconds"`
	RestartRequired bool           `json:"restart_required"`
}

// SoakRestored is a file an online run put back.
type SoakRestored struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Subject string `json:"subject"`
	Why     string `json:"why"`
}

// SoakRun is one run of the cleaner during a soak.
type SoakRun struct {
	N      int // from 1
	Args   []string
	Code   int
	Stdout string
	Stderr string
	Took   time.Duration
	End    time.Time
	// Report is the parsed --json report; nil when stdout held none.
	Report *SoakReport
	// Bad says what is wrong with the run ("" when nothing): it did not run, exited
	// other than 0 (or 3, problems reported), printed no report, did not complete, or
	// reported no online section.
	Bad string
}

func (r SoakRun) String() string {
	return fmt.Sprintf("run %d (%s): %s\n--- stdout (end):\n%s\n--- stderr (end):\n%s",
		r.N, strings.Join(r.Args, " "), r.Bad, tail(r.Stdout, 3000), tail(r.Stderr, 3000))
}

// SoakOptions say what a soak runs.
type SoakOptions struct {
	// Pushers push for Duration.
	Pushers  int
	Duration time.Duration
	// MinRuns is the least number of runs during and after the churn (the runs go on
	// after it until there were that many), the final run aside.
	MinRuns int
	// Bin and Args are the cleaner's command line; Env is added to its environment.
	Bin  string
	Args []string
	Env  []string
	// RunTimeout bounds one run (default 2 minutes).
	RunTimeout time.Duration
}

// SoakResult is what a soak's runs did.
type SoakResult struct {
	Runs []SoakRun
	// DuringChurn counts the runs that began while the churn pushed.
	DuringChurn int
	// ChurnTook is the churn's wall time.
	ChurnTook time.Duration
}

// Soak runs the churn for o.Duration and meanwhile the cleaner again and again, one
// run after the other, then once more when the churn is over (the final run, the last
// of Runs). Runs that go wrong are recorded (SoakRun.Bad), never fatal, so that the
// churn always goes on to its end. It fails only when ctx ends.
func Soak(ctx context.Context, churn *Churn, o SoakOptions) (*SoakResult, error) {
	if o.RunTimeout <= 0 {
		o.RunTimeout = 2 * time.Minute
	}
	res := &SoakResult{}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- churn.Run(ctx, o.Pushers, o.Duration) }()
	var churnErr error
	for churning := true; ; {
		select {
		case churnErr = <-done:
			churning = false
			res.ChurnTook = time.Since(start)
			res.DuringChurn = len(res.Runs)
		default:
		}
		if !churning && len(res.Runs) >= o.MinRuns {
			break
		}
		if ctx.Err() != nil {
			if churning {
				<-done
			}
			return res, ctx.Err()
		}
		res.Runs = append(res.Runs, soakRun(ctx, len(res.Runs)+1, o))
	}
	if churnErr != nil {
		return res, churnErr
	}
	res.Runs = append(res.Runs, soakRun(ctx, len(res.Runs)+1, o))
	return res, nil
}

func soakRun(ctx context.Context, n int, o SoakOptions) SoakRun {
	ctx, cancel := context.WithTimeout(ctx, o.RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Bin, o.Args...)
	if len(o.Env) > 0 {
		cmd.Env = append(cmd.Environ(), o.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := SoakRun{N: n, Args: o.Args, Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start), End: time.Now()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		r.Code = -1
		r.Bad = fmt.Sprintf("did not run: %v", err)
		return r
	}
	var rep SoakReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		r.Bad = fmt.Sprintf("exit %d; the --json report does not parse: %v", r.Code, err)
		return r
	}
	r.Report = &rep
	switch {
	case r.Code != 0 && r.Code != 3:
		// 3: done, with problems in the storage; during churn a run may see transient
		// files, or links to blobs still being uploaded.
		r.Bad = fmt.Sprintf("exit %d, want 0 (or 3: problems reported); stage %q: %s", r.Code, rep.Stage, rep.Error)
	case (r.Code == 3) != (len(rep.Problems) > 0):
		r.Bad = fmt.Sprintf("exit %d with %d problems reported: 3 is for problems, 0 for none", r.Code, len(rep.Problems))
	case !rep.Completed:
		r.Bad = fmt.Sprintf("exit %d but not completed; stage %q: %s", r.Code, rep.Stage, rep.Error)
	case rep.Online == nil:
		r.Bad = "the report has no online section"
	}
	return r
}

// Bad are the runs that went wrong.
func (s *SoakResult) Bad() []SoakRun {
	var out []SoakRun
	for _, r := range s.Runs {
		if r.Bad != "" {
			out = append(out, r)
		}
	}
	return out
}

// Restored are the files every run put back, in run order.
func (s *SoakResult) Restored() []SoakRestored {
	var out []SoakRestored
	for _, r := range s.Runs {
		if r.Report != nil && r.Report.Online != nil {
			out = append(out, r.Report.Online.Restored...)
		}
	}
	return out
}

// Deleted sums the runs' applied deletions of kind ("" for all kinds).
func (s *SoakResult) Deleted(kind string) int {
	n := 0
	for _, r := range s.Runs {
		switch {
		case r.Report == nil:
		case kind == "":
			n += r.Report.Applied
		default:
			n += r.Report.ByKind[kind].Count
		}
	}
	return n
}

// Summary sums the runs up in a few lines, to log and quote.
func (s *SoakResult) Summary() string {
	var b strings.Builder
	codes := map[int]int{}
	var sum, longest time.Duration
	var quarantined, recovered, restart int
	problems, settled := map[string]int{}, map[string]int{}
	var problemSample []string
	var settle, verify, purge float64
	for _, r := range s.Runs {
		codes[r.Code]++
		sum += r.Took
		longest = max(longest, r.Took)
		if r.Report == nil {
			continue
		}
		for _, p := range r.Report.Problems {
			if problems[p.Kind]++; problems[p.Kind] == 1 {
				problemSample = append(problemSample, fmt.Sprintf("run %d: %s %s %s", r.N, p.Kind, p.Path, p.Detail))
			}
		}
		for _, p := range r.Report.Settled {
			settled[p.Kind]++
		}
		if o := r.Report.Online; o != nil {
			quarantined += o.Quarantined
			recovered += len(o.Recovered)
			settle += o.SettleSeconds
			verify += o.VerifySeconds
			purge += o.PurgeSeconds
			if o.RestartRequired {
				restart++
			}
		}
	}
	n := len(s.Runs)
	fmt.Fprintf(&b, "%d online runs (%d began during the %s churn, then %d more, the final one included), %d bad; exit codes %v; "+
		"run time mean %s, longest %s; settle %.1fs, verify %.1fs, purge %.1fs in all\n",
		n, s.DuringChurn, s.ChurnTook.Round(time.Millisecond), n-s.DuringChurn, len(s.Bad()), codes,
		(sum / time.Duration(max(n, 1))).Round(time.Millisecond), longest.Round(time.Millisecond), settle, verify, purge)
	restored := s.Restored()
	byKind := map[string]int{}
	for _, r := range restored {
		byKind[r.Kind]++
	}
	fmt.Fprintf(&b, "deletions applied %d (%d blobs, %d revisions, %d layer links); files quarantined %d; restored %d %v; "+
		"problems %v; writes under way settled %v; earlier quarantines recovered %d; runs saying restart_required %d",
		s.Deleted(""), s.Deleted("blob"), s.Deleted("revision"), s.Deleted("layer-link"), quarantined, len(restored), byKind,
		problems, settled, recovered, restart)
	for _, p := range problemSample {
		fmt.Fprintf(&b, "\nfirst problem of its kind: %s", p)
	}
	for i, r := range restored {
		if i == 10 {
			fmt.Fprintf(&b, "\n... %d more restored", len(restored)-i)
			break
		}
		fmt.Fprintf(&b, "\nrestored %s %s (%s): %s", r.Kind, r.Path, r.Subject, r.Why)
	}
	return b.String()
}

// History tells what the runs did to a digest: every deletion and put-back that
// names it, with the run's number and end.
func (s *SoakResult) History(digest string) []string {
	hex := strings.TrimPrefix(digest, "sha256:")
	var out []string
	for _, r := range s.Runs {
		if r.Report == nil {
			continue
		}
		for _, d := range r.Report.Deletions {
			if d.Digest == digest || strings.Contains(d.Path, hex) {
				out = append(out, fmt.Sprintf("run %d (ended %s) deleted %s %s: %s", r.N, r.End.Format("15:04:05.000"), d.Kind, d.Path, d.Reason))
			}
		}
		if o := r.Report.Online; o != nil {
			for _, x := range o.Restored {
				if strings.Contains(x.Path, hex) || strings.Contains(x.Subject, hex) {
					out = append(out, fmt.Sprintf("run %d (ended %s) restored %s %s (%s): %s", r.N, r.End.Format("15:04:05.000"), x.Kind, x.Path, x.Subject, x.Why))
				}
			}
		}
	}
	return out
}

// ExplainT logs, for every digest a broken image misses, what the runs did to it.
func (s *SoakResult) ExplainT(t testing.TB, broken []ChurnBroken) {
	t.Helper()
	for i, b := range broken {
		if i == 20 {
			break
		}
		for d := range b.Missing {
			h := s.History(d)
			if len(h) == 0 {
				h = []string{"no run reports it"}
			}
			t.Logf("%s, missing from %s: %s", d, b.Push.Ref, strings.Join(h, "; "))
		}
	}
}

// CheckT fails the test for every bad run (the first five in full), logs the
// summary, and fails it unless the runs deleted some blob.
func (s *SoakResult) CheckT(t testing.TB) {
	t.Helper()
	t.Logf("%s", s.Summary())
	for i, r := range s.Bad() {
		if i == 5 {
			t.Errorf("... and %d more bad runs", len(s.Bad())-i)
			break
		}
		t.Errorf("bad online %s", r)
	}
	if s.Deleted("blob") == 0 {
		t.Errorf("%d runs deleted no blob: the soak proved nothing", len(s.Runs))
	}
}

// VerifyT is Verify for tests: it logs the churn's counts, fails the test for every
// broken image (the first twenty named) and when there was nothing to verify.
func (c *Churn) VerifyT(t testing.TB, host string) []ChurnBroken {
	t.Helper()
	counts := c.Counts()
	t.Logf("churn: %s", counts)
	kinds := make([]string, 0, len(counts.FailureSamples))
	for k := range counts.FailureSamples {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("first failed push of %s: %s", k, counts.FailureSamples[k])
	}
	broken, err := c.Verify(context.Background(), host)
	if err != nil {
		t.Fatalf("verifying the churn's images: %v", err)
	}
	t.Logf("verified %d tags, every manifest and blob against its digest: %d broken", counts.Expected, len(broken))
	if counts.Expected == 0 {
		t.Errorf("no tag to verify: the churn pushed nothing")
	}
	for i, b := range broken {
		if i == 20 {
			t.Errorf("... and %d more broken", len(broken)-i)
			break
		}
		t.Errorf("broken: %s", b)
	}
	return broken
}

// CheckUntouchedGoneT fails the test unless every blob of the seeded old images that
// no push used is gone (present says whether a blob is still in storage), or when
// there is none; it returns those gone.
func (c *Churn) CheckUntouchedGoneT(t testing.TB, present func(digest string) bool) []string {
	t.Helper()
	untouched := c.UntouchedOldBlobs()
	if len(untouched) == 0 {
		t.Fatalf("the pushers used every seeded blob: nothing shows that the runs delete")
	}
	var kept, gone []string
	for _, d := range untouched {
		if present(d) {
			kept = append(kept, d)
		} else {
			gone = append(gone, d)
		}
	}
	t.Logf("%d blobs of old images no push used: %d deleted", len(untouched), len(gone))
	if len(kept) > 0 {
		t.Errorf("%d of them are still in storage, e.g. %v", len(kept), kept[:min(len(kept), 5)])
	}
	return gone
}
