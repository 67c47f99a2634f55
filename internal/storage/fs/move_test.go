package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func TestMove(t *testing.T) {
	tr := layouttest.New(t)
	root := tr.Root
	write := func(p, content string) { tr.Write(p, []byte(content)) }
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(data)
	}
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p)))
		return err == nil
	}
	write("a/x/link", "x")
	write("a/y/link", "y-new")
	write("q/y/link", "y-old")
	write("q/y/other", "o")
	write("a/z/data", "z")
	b, err := New(root, 2)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Move(context.Background(), []storage.Move{
		{Unit: storage.Unit{Dir: "a/x", Files: []string{"link"}}, To: "q/deep/x"}, // a new destination: one rename
		{Unit: storage.Unit{Dir: "q/y", Files: []string{"link"}}, To: "a/y"},      // into an existing one: file by file
		{Unit: storage.Unit{Dir: "a/missing"}, To: "q/missing"},                   // gone already: moved
		{Unit: storage.Unit{Dir: "a/z"}, To: "q/z"},                               // files not known
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"q/deep/x/link": "x", "a/y/link": "y-new", "a/y/other": "o", "q/z/data": "z"} {
		if got := read(p); got != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"a/x", "q/y", "a/z", "q/missing"} {
		if exists(p) {
			t.Errorf("%s is still there", p)
		}
	}
	if err := b.Move(context.Background(), []storage.Move{{Unit: storage.Unit{Dir: "a/y"}, To: "."}}); err == nil {
		t.Errorf("moving onto the storage root was not refused")
	}
}
