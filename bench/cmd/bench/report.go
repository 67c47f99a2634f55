package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/clean-registry/clean-registry/v2/bench/upstream"
)

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs                  int
	CPUModel, Kernel      string
	Memory                string
	FS, Disk              string
	Go, CleanRegistry     string
	LoadBefore, LoadAfter string
	Date                  string
}

func describeMachine(work string) *Machine {
	m := &Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAvg(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	if out, err := exec.Command("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", work).Output(); err == nil {
		m.FS = strings.TrimSpace(string(out))
		dev := strings.TrimPrefix(strings.Fields(m.FS)[0], "/dev/")
		if out, err := exec.Command("lsblk", "-dn", "-o", "NAME,SIZE,ROTA,MODEL", "/dev/"+dev).Output(); err == nil {
			m.Disk = strings.Join(strings.Fields(string(out)), " ") + " (NAME SIZE ROTA MODEL; ROTA is what a virtual disk claims)"
		}
	}
	return m
}

func (m *Machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s memory, kernel %s; work directory on %s; disk %s. %s; %s; upstream registry %s. "+
		"Load average before: %s, after: %s. Date: %s.\n",
		m.CPUs, m.CPUModel, m.Memory, m.Kernel, m.FS, m.Disk, m.Go, m.CleanRegistry, upstream.Version,
		m.LoadBefore, m.LoadAfter, m.Date)
	return b.String()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// checkSpace refuses to start when the file system cannot hold three more copies.
func checkSpace(dir string, entries int) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	need := uint64(entries) * 3
	if st.Ffree < need || st.Bavail*uint64(st.Bsize) < need*4096 {
		return fmt.Errorf("%s: %d free inodes and %d MiB free; three copies need about %d inodes and %d MiB",
			dir, st.Ffree, st.Bavail*uint64(st.Bsize)>>20, need, need*4096>>20)
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
func mib(b int64) string          { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.Seconds()/b.Seconds())
}

func (r *Result) floor() Measure { return r.Find.add(r.Rm) }

func (r *Result) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s: %d files, %d directories, %d blobs\n\n", r.Name, r.Files, r.Dirs, r.Blobs)
	if r.Knobs != "" {
		fmt.Fprintf(&b, "Generated with `gentree %s`. ", r.Knobs)
	}
	fmt.Fprintf(&b, "Load average before: %s, after: %s.\n\n", r.LoadBefore, r.LoadAfter)
	b.WriteString("| run | wall s | user+sys s | peak RSS MiB | deleted files / dirs |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, m Measure, deleted string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, secs(m.Wall), secs(m.CPU), mib(m.MaxRSS), deleted)
	}
	row("`find ROOT -type f` (floor walk)", r.Find, "")
	row("`xargs -P2 rm` of the files clean-registry deleted", r.RmFiles, fmt.Sprint(r.CrDeleted))
	row("`xargs -P2 rmdir` of its directories, deepest first", r.RmDirs, fmt.Sprint(r.CrDirs))
	row("**floor** = find + rm", r.floor(), "")
	if r.HaveUpstream {
		row("upstream `garbage-collect --delete-untagged --dry-run`", r.UpDry, "")
		row("upstream `garbage-collect --delete-untagged`", r.UpReal, fmt.Sprintf("%d / %d", r.UpDeleted, r.UpDirs))
	}
	row("clean-registry `-n --grace 0`", r.CrDry, "")
	row("clean-registry `--grace 0`", r.CrReal, fmt.Sprintf("%d / %d", r.CrDeleted, r.CrDirs))

	b.WriteString("\n| ratio | value | target |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| clean-registry real / floor | %s | ≤ 1.5 |\n", ratio(r.CrReal.Wall, r.floor().Wall))
	fmt.Fprintf(&b, "| clean-registry dry / find | %s | ≤ 2 |\n", ratio(r.CrDry.Wall, r.Find.Wall))
	if r.HaveUpstream {
		fmt.Fprintf(&b, "| upstream real / clean-registry real | %s | ≥ 2 on medium |\n", ratio(r.UpReal.Wall, r.CrReal.Wall))
		fmt.Fprintf(&b, "| upstream dry / clean-registry dry | %s | ≥ 50 on manytags |\n", ratio(r.UpDry.Wall, r.CrDry.Wall))
		fmt.Fprintf(&b, "| peak RSS clean-registry / upstream (the higher of dry and real run each) | %.2f | ≤ 1 on medium |\n",
			float64(max(r.CrReal.MaxRSS, r.CrDry.MaxRSS))/float64(max(r.UpReal.MaxRSS, r.UpDry.MaxRSS, 1)))
	}
	fmt.Fprintf(&b, "| clean-registry peak RSS per blob (dry or real run) | %.0f B | < 300 B on large |\n", float64(max(r.CrReal.MaxRSS, r.CrDry.MaxRSS))/float64(max(r.Blobs, 1)))

	b.WriteString("\nChecks:\n")
	check := func(ok bool, what string) {
		mark := "ok"
		if !ok {
			mark = "**FAILED**"
		}
		fmt.Fprintf(&b, "- %s: %s\n", what, mark)
	}
	if c := r.Comparison; c != nil {
		check(c.Failed == 0, "clean-registry left the same blobs, revisions and tags as upstream")
		for _, f := range c.Failures {
			fmt.Fprintf(&b, "  - %s\n", f)
		}
		if c.Failed > len(c.Failures) {
			fmt.Fprintf(&b, "  - ... %d differences in all\n", c.Failed)
		}
		classes := make([]string, 0, len(c.Aside))
		for k := range c.Aside {
			classes = append(classes, k)
		}
		sort.Strings(classes)
		for _, k := range classes {
			fmt.Fprintf(&b, "  - by design: %d %s\n", c.Aside[k], k)
		}
	}
	check(len(r.PlanProblems) == 0, "the real run deleted exactly what the dry run planned")
	for _, p := range r.PlanProblems {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	check(!r.DryRunModified, "the dry run left the tree untouched")
	check(!r.FloorMismatch, "the floor copy ends identical to clean-registry's")
	if p := r.Pull; p != nil {
		check(p.Failed == 0, fmt.Sprintf("upstream registry serving the cleaned tree: every tag and revision left pulls (%d manifests, %d blobs verified)", p.Manifests, p.Blobs))
		for _, f := range p.Failures {
			fmt.Fprintf(&b, "  - %s\n", f)
		}
	}
	return b.String()
}

// summary is one line per tree, to show how cost grows with size.
func summary(results []*Result) string {
	var b strings.Builder
	b.WriteString("| tree | files | find s | floor s | cr dry s | cr real s | upstream dry s | upstream real s | cr real / floor | cr dry / find | upstream / cr real | upstream / cr dry | cr RSS MiB | upstream RSS MiB |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		up := func(m Measure) string {
			if !r.HaveUpstream {
				return "–"
			}
			return secs(m.Wall)
		}
		upRatio := func(a, b time.Duration) string {
			if !r.HaveUpstream {
				return "–"
			}
			return ratio(a, b)
		}
		upRSS := "–"
		if r.HaveUpstream {
			upRSS = mib(r.UpReal.MaxRSS)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Name, r.Files, secs(r.Find.Wall), secs(r.floor().Wall), secs(r.CrDry.Wall), secs(r.CrReal.Wall),
			up(r.UpDry), up(r.UpReal), ratio(r.CrReal.Wall, r.floor().Wall), ratio(r.CrDry.Wall, r.Find.Wall),
			upRatio(r.UpReal.Wall, r.CrReal.Wall), upRatio(r.UpDry.Wall, r.CrDry.Wall),
			mib(max(r.CrReal.MaxRSS, r.CrDry.MaxRSS)), upRSS)
	}
	// The same figures per unit of tree: flat columns down the sizes mean linear cost.
	b.WriteString("\n| tree | files | blobs | find µs/file | cr dry µs/file | cr real µs/file | upstream dry µs/file | cr peak RSS B/blob | upstream peak RSS B/blob |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		perFile := func(d time.Duration) string {
			return fmt.Sprintf("%.1f", float64(d.Microseconds())/float64(max(r.Files, 1)))
		}
		perBlob := func(rss int64) string { return fmt.Sprintf("%.0f", float64(rss)/float64(max(r.Blobs, 1))) }
		upDry, upRSS := "–", "–"
		if r.HaveUpstream {
			upDry, upRSS = perFile(r.UpDry.Wall), perBlob(max(r.UpReal.MaxRSS, r.UpDry.MaxRSS))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", r.Name, r.Files, r.Blobs,
			perFile(r.Find.Wall), perFile(r.CrDry.Wall), perFile(r.CrReal.Wall), upDry,
			perBlob(max(r.CrReal.MaxRSS, r.CrDry.MaxRSS)), upRSS)
	}
	return b.String()
}
