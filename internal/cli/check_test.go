package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommandLine(t *testing.T) {
	// sample's manifests state no sizes: its tag is broken (wrong sizes).
	root := sample(t)
	tests := []struct {
		args []string
		code int
		out  string // in stdout
	}{
		{[]string{"check", "--help"}, ExitOK, "Exit status"},
		{[]string{"check", "--root", root}, ExitBroken, "app:v1 -> wrong-size blob sha256:"},
		{[]string{"check", "--root", root, "-q", "app"}, ExitBroken, "app:v1 -> "},
		{[]string{"check", "--root", root, "--json", "app:v1"}, ExitBroken, `"healthy": false`},
		{[]string{"check", "--root", root, "app:nope"}, ExitError, ""},
		{[]string{"check", "--root", root, "--json", "nope"}, ExitError, `"error": "repository nope: not in the storage"`},
		{[]string{"check", "--root", filepath.Join(root, "missing")}, ExitError, ""},
		{[]string{"check", "--bogus", "--json"}, ExitUsage, `"stage": "command line"`},
		{[]string{"check"}, ExitUsage, ""},
		{[]string{"check", "--root", root, "--config", "x"}, ExitUsage, ""},
		{[]string{"check", "--root", root, "-v"}, ExitUsage, ""},
		{[]string{"check", "--root", root, "-j", "0"}, ExitUsage, ""},
		{[]string{"check", "--root", root, "Bad:Name"}, ExitUsage, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.out) {
			t.Errorf("%s: exit %d, want %d and %q in stdout\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, tt.out, &stdout, &stderr)
		}
		if code != ExitOK && code != ExitBroken && !strings.Contains(stderr.String(), "ERROR: ") {
			t.Errorf("%s: exit %d without an error on stderr", strings.Join(tt.args, " "), code)
		}
		if strings.Contains(strings.Join(tt.args, " "), "--json") {
			var doc checkDoc
			if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
				t.Errorf("%s: no single JSON document: %v\n%s", strings.Join(tt.args, " "), err, &stdout)
			}
		}
	}
}
