package cli

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// "version" prints what --version prints; --json the same version with the build's
// details; anything else is a bad command line.
func TestVersionSubcommand(t *testing.T) {
	_, want, _ := cli("--version")
	if !strings.HasSuffix(want, " "+Version+"\n") {
		t.Fatalf("--version printed %q, want the program and %s", want, Version)
	}
	code, out, errs := cli("version")
	if code != ExitOK || out != want || errs != "" {
		t.Fatalf("version: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, errs, want)
	}

	code, out, errs = cli("version", "--json")
	if code != ExitOK || errs != "" {
		t.Fatalf("version --json: exit %d, stderr %q", code, errs)
	}
	var doc versionDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	if doc.Version != Version || doc.Program == "" || doc.Go != runtime.Version() ||
		doc.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --json: %+v; want version %s, go %s, platform %s/%s",
			doc, Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	if code, out, _ := cli("version", "--help"); code != ExitOK || !strings.Contains(out, "version [--json]") {
		t.Errorf("version --help: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"version", "--bogus"}, {"version", "extra"}} {
		if code, out, errs := cli(args...); code != ExitUsage || out != "" || !strings.Contains(errs, "ERROR: version:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and an error", args, code, out, errs)
		}
	}
	// "clean" still makes it a cleaning (for a container named "version"); here of
	// a root that is no registry, with "version" a repository.
	if code, _, errs := cli("clean", "--root", t.TempDir(), "version"); code != ExitError || !strings.Contains(errs, "not a registry") {
		t.Errorf("clean --root DIR version: exit %d, %q; want the cleaning's error for a root that is no registry", code, errs)
	}
}

// A binary that "go install ...@vX.Y.Z" built says X.Y.Z; local builds and
// pseudo-versions say the default.
func TestReleaseVersion(t *testing.T) {
	for _, tc := range []struct {
		mod, want string
		ok        bool
	}{
		{"v2.1.0", "2.1.0", true},
		{"v2.0.0-rc.1", "2.0.0-rc.1", true},
		{"(devel)", "", false},
		{"", "", false},
		{"v2.0.1-0.20261202031500-abcdef123456", "", false},
		{"v2.0.0-20261202031500-abcdef123456", "", false},
		{"v2.1.0+dirty", "", false},
		{"2.1.0", "", false},
	} {
		got, ok := releaseVersion(tc.mod)
		if got != tc.want || ok != tc.ok {
			t.Errorf("releaseVersion(%q) = %q, %v; want %q, %v", tc.mod, got, ok, tc.want, tc.ok)
		}
	}
}
