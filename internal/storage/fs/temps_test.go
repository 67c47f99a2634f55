package fs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A temporary file left by a writer killed before its rename goes with the next
// write, once its process is gone; a live writer's stays.
func TestWriteRemovesDeadWritersTemps(t *testing.T) {
	root := t.TempDir()
	b, err := New(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "tool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dead := tempPrefix("lock") + strconv.Itoa(gone.Process.Pid) + "-" + hostname() + "-00"
	live := tempPrefix("lock") + "1-" + hostname() + "-00" // init never goes
	other := tempPrefix("lock") + strconv.Itoa(gone.Process.Pid) + "-elsewhere-00"
	for _, n := range []string{dead, live, other} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteFile(context.Background(), "tool/lock", []byte("x"), true); err != nil {
		t.Fatalf("write: %v", err)
	}
	for n, want := range map[string]bool{dead: false, live: true, other: true} {
		if _, err := os.Stat(filepath.Join(dir, n)); (err == nil) != want {
			t.Errorf("%s: present = %v, want %v", n, err == nil, want)
		}
	}
}
