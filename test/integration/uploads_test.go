package integration

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// newEnvResumable is newEnv with a fixed http.secret: the registry signs an
// upload's state with it, and a random one per start would make every upload begun
// before a restart unresumable, whatever the cleaner did.
func newEnvResumable(t *testing.T) *env {
	t.Helper()
	root := filepath.Join(t.TempDir(), "storage")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("making the storage root: %v", err)
	}
	reg := harness.StartT(t, harness.Config{Root: root, Env: []string{"REGISTRY_HTTP_SECRET=clean-registry-test-secret"}})
	return &env{t: t, root: root, reg: reg, s: reg.Session(t)}
}

// writeStartedAt replaces an upload's startedat, as the registry writes it (RFC 3339).
func (e *env) writeStartedAt(u *harness.Upload, content string) {
	e.t.Helper()
	if err := harness.WriteFile(e.root, harness.UploadStartedAtPath(u.Repo, u.ID), []byte(content)); err != nil {
		e.t.Fatalf("writing the startedat of upload %s: %v", u.ID, err)
	}
}

// uploadFiles lists the files of an upload's directory, relative to it.
func (e *env) uploadFiles(u *harness.Upload) []string {
	e.t.Helper()
	dir := filepath.Join(e.root, filepath.FromSlash(harness.UploadDirPath(u.Repo, u.ID)))
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	tr, err := harness.ListTree(dir)
	if err != nil {
		e.t.Fatalf("listing upload %s: %v", u.ID, err)
	}
	return tr.Files
}

func twoDaysAgo() string { return time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339) }

// TestUnfinishedUploads begins uploads through the registry's API, ages one by its
// startedat and garbles another's: the default upload age purges only the old one,
// the garbled one is kept and reported, and the registry can still finish the fresh
// one afterwards.
func TestUnfinishedUploads(t *testing.T) {
	t.Parallel()
	e := newEnvResumable(t)
	e.s.PushImage("app:1", harness.Image(300, 2, harness.OCI))
	content := harness.Random(301, 3000)
	contentD := harness.Sha256(content)

	old := e.s.StartUpload("app")
	e.s.PatchUpload(old, harness.Random(302, 1000))
	fresh := e.s.StartUpload("app")
	e.s.PatchUpload(fresh, content[:1000])
	garbled := e.s.StartUpload("app")
	e.s.PatchUpload(garbled, harness.Random(303, 500))
	// An upload in a repository holding nothing else: purging it empties the repository.
	lone := e.s.StartUpload("scratch")
	e.reg.StopT(t)

	for _, u := range []*harness.Upload{old, fresh, garbled} {
		files := e.uploadFiles(u)
		if !slices.Contains(files, "data") || !slices.Contains(files, "startedat") ||
			!slices.ContainsFunc(files, func(f string) bool { return filepath.Dir(f) == "hashstates/sha256" }) {
			t.Fatalf("upload %s holds %v; want data, startedat and hashstates/sha256/<offset>", u.ID, files)
		}
	}
	freshFiles := e.uploadFiles(fresh)
	e.writeStartedAt(old, twoDaysAgo())
	e.writeStartedAt(lone, twoDaysAgo())
	e.writeStartedAt(garbled, "not a time")

	// The garbled startedat is a problem found in the storage: exit 3.
	rep := parseReport(t, e.cleanProblems("--grace", "0", "--json"))
	if e.exists(harness.UploadDirPath(old.Repo, old.ID)) {
		t.Errorf("the upload started two days ago is still there: %v", e.uploadFiles(old))
	}
	if e.exists(harness.UploadDirPath(lone.Repo, lone.ID)) {
		t.Errorf("the old upload of a repository holding nothing else is still there")
	}
	if e.exists(harness.RepoPath("scratch")) {
		t.Errorf("the repository its old upload emptied is still there")
	}
	if got := e.uploadFiles(fresh); !slices.Equal(got, freshFiles) {
		t.Errorf("the fresh upload holds %v, want it untouched: %v", got, freshFiles)
	}
	if len(e.uploadFiles(garbled)) == 0 {
		t.Errorf("the upload with a garbled startedat was deleted")
	}
	uploads := map[string]bool{}
	for _, d := range rep.Deletions {
		if d.Kind == "upload" {
			uploads[d.Path] = true
		}
	}
	if want := map[string]bool{harness.UploadDirPath("app", old.ID): true, harness.UploadDirPath("scratch", lone.ID): true}; !maps.Equal(uploads, want) {
		t.Errorf("the report deletes uploads %v, want %v", uploads, want)
	}
	var badUploads []string
	for _, p := range rep.Problems {
		if p.Kind == "bad-upload" {
			badUploads = append(badUploads, p.Path)
		}
	}
	if want := []string{harness.UploadDirPath("app", garbled.ID)}; !slices.Equal(badUploads, want) {
		t.Errorf("bad-upload problems %v, want %v (all problems: %+v)", badUploads, want, rep.Problems)
	}

	// The restarted registry serves what was kept and finishes the fresh upload.
	e.s.Pull("app:1")
	e.s.PatchUpload(fresh, content[1000:2000])
	e.s.FinishUpload(fresh, contentD, content[2000:])
	if got := e.s.FetchBlob("app", contentD); len(got) != len(content) {
		t.Errorf("the finished upload serves %d bytes, want %d", len(got), len(content))
	}
	if e.exists(harness.UploadDirPath(fresh.Repo, fresh.ID)) {
		t.Errorf("the registry left the finished upload's directory")
	}
	// The purged upload is unknown to the registry now.
	if err := old.Patch(e.s.Ctx, e.s.Host, []byte("more")); err == nil {
		t.Errorf("the registry still accepts data for the purged upload %s", old.ID)
	}
}

// TestUploadAgeZero purges every upload whatever its age, except those whose age
// cannot be read.
func TestUploadAgeZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.PushImage("app:1", harness.Image(310, 1, harness.Docker))
	old := e.s.StartUpload("app")
	e.s.PatchUpload(old, harness.Random(311, 700))
	fresh := e.s.StartUpload("app")
	e.s.PatchUpload(fresh, harness.Random(312, 700))
	garbled := e.s.StartUpload("app")
	e.reg.StopT(t)
	e.writeStartedAt(old, twoDaysAgo())
	e.writeStartedAt(garbled, "")

	rep := parseReport(t, e.cleanProblems("--grace", "0", "--upload-age", "0", "--json")) // the empty startedat: exit 3
	for _, u := range []*harness.Upload{old, fresh} {
		if e.exists(harness.UploadDirPath(u.Repo, u.ID)) {
			t.Errorf("--upload-age 0 left upload %s: %v", u.ID, e.uploadFiles(u))
		}
	}
	if !e.exists(harness.UploadStartedAtPath(garbled.Repo, garbled.ID)) {
		t.Errorf("--upload-age 0 deleted the upload whose startedat is empty")
	}
	found := false
	for _, p := range rep.Problems {
		found = found || p.Kind == "bad-upload" && p.Path == harness.UploadDirPath("app", garbled.ID)
	}
	if !found {
		t.Errorf("no bad-upload problem for the empty startedat: %+v", rep.Problems)
	}
	e.s.Pull("app:1")
	// A new upload still works end to end.
	content := harness.Random(313, 900)
	u := e.s.StartUpload("app")
	e.s.FinishUpload(u, harness.Sha256(content), content)
	e.s.FetchBlob("app", harness.Sha256(content))
}
