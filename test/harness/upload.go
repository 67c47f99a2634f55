package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
)

// UploadDirPath is an upload's directory: data, startedat and hashstates/.
func UploadDirPath(repo, id string) string { return path.Join(RepoPath(repo), "_uploads", id) }

// UploadStartedAtPath holds the RFC 3339 time an upload began.
func UploadStartedAtPath(repo, id string) string {
	return path.Join(UploadDirPath(repo, id), "startedat")
}

// Upload is a blob upload begun through the registry's HTTP API and not finished.
// The registry keeps its progress in an HMAC-signed _state token inside Location,
// so continuing it after a restart needs a registry with a fixed http.secret
// (REGISTRY_HTTP_SECRET in Config.Env).
type Upload struct {
	Repo string
	// ID is the upload's UUID, the name of its directory under _uploads.
	ID string
	// Location is where the next PATCH or the final PUT goes.
	Location string
	// Written counts the bytes the registry acknowledged.
	Written int64
}

// StartUpload begins a blob upload in repo (POST /v2/<repo>/blobs/uploads/), which
// makes the registry write the upload's startedat and data files.
func StartUpload(ctx context.Context, host, repo string) (*Upload, error) {
	resp, err := uploadRequest(ctx, http.MethodPost, "http://"+host+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, uploadError("POST upload to "+repo, resp)
	}
	u := &Upload{Repo: repo, ID: resp.Header.Get("Docker-Upload-UUID")}
	if u.ID == "" {
		return nil, fmt.Errorf("POST upload to %s: no Docker-Upload-UUID", repo)
	}
	return u, u.follow(host, resp)
}

// Patch sends the next chunk of the upload; the registry appends it to the upload's
// data and stores its hash state.
func (u *Upload) Patch(ctx context.Context, host string, chunk []byte) error {
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Range", fmt.Sprintf("%d-%d", u.Written, u.Written+int64(len(chunk))-1))
	resp, err := uploadRequest(ctx, http.MethodPatch, u.Location, h, chunk)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return uploadError("PATCH upload "+u.ID, resp)
	}
	u.Written += int64(len(chunk))
	return u.follow(host, resp)
}

// Finish completes the upload with a last chunk (may be empty) as the blob digest
// (PUT <location>?digest=...): the blob is then stored and linked into the repository.
func (u *Upload) Finish(ctx context.Context, host, digest string, last []byte) error {
	loc, err := url.Parse(u.Location)
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	resp, err := uploadRequest(ctx, http.MethodPut, loc.String(), h, last)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return uploadError("PUT upload "+u.ID, resp)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		return fmt.Errorf("PUT upload %s: registry stored %q, want %s", u.ID, got, digest)
	}
	return nil
}

// follow takes the next Location of the upload from a response, made absolute.
func (u *Upload) follow(host string, resp *http.Response) error {
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path == "" {
		return fmt.Errorf("upload %s: bad Location %q", u.ID, resp.Header.Get("Location"))
	}
	base := &url.URL{Scheme: "http", Host: host}
	u.Location = base.ResolveReference(loc).String()
	return nil
}

// uploadRequest does one request and reads its body away (kept in resp for errors).
func uploadRequest(ctx context.Context, method, u string, h http.Header, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(msg))
	return resp, nil
}

func uploadError(what string, resp *http.Response) error {
	msg, _ := io.ReadAll(resp.Body)
	return fmt.Errorf("%s: %s: %s", what, resp.Status, bytes.TrimSpace(msg))
}

// FetchBlob GETs a blob of repo and checks its content against digest.
func FetchBlob(ctx context.Context, host, repo, digest string) ([]byte, error) {
	resp, err := uploadRequest(ctx, http.MethodGet, "http://"+host+"/v2/"+repo+"/blobs/"+digest, nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := uploadError("GET blob "+repo+"@"+digest, resp)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	if d := digestOf(body); d != digest {
		return nil, fmt.Errorf("GET blob %s@%s: content is %s", repo, digest, d)
	}
	return body, nil
}

// StartUpload begins a blob upload in repo, or fails the test.
func (s *Session) StartUpload(repo string) *Upload {
	s.T.Helper()
	u, err := StartUpload(s.Ctx, s.Host, repo)
	s.check(err, "starting an upload in %s", repo)
	return u
}

// PatchUpload sends a chunk of u, or fails the test.
func (s *Session) PatchUpload(u *Upload, chunk []byte) {
	s.T.Helper()
	s.check(u.Patch(s.Ctx, s.Host, chunk), "PATCH of %d bytes to upload %s in %s", len(chunk), u.ID, u.Repo)
}

// FinishUpload completes u as digest with a last chunk, or fails the test.
func (s *Session) FinishUpload(u *Upload, digest string, last []byte) {
	s.T.Helper()
	s.check(u.Finish(s.Ctx, s.Host, digest, last), "finishing upload %s in %s as %s", u.ID, u.Repo, digest)
}

// FetchBlob GETs a blob of repo verified against its digest, or fails the test.
func (s *Session) FetchBlob(repo, digest string) []byte {
	s.T.Helper()
	b, err := FetchBlob(s.Ctx, s.Host, repo, digest)
	s.check(err, "verified GET of blob %s@%s", repo, digest)
	return b
}
