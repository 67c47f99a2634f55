package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Ref names a manifest to pull: by tag or by "sha256:..." digest.
type Ref struct {
	Repo, Reference string
}

// PullStats counts what a pull verified.
type PullStats struct {
	Manifests, Blobs int64
	Failures         []string // the first failures, at most 20
	Failed           int64
}

var accept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// PullAll pulls every ref as a client would: the manifest, the children of an index
// (recursively), the config and every layer, each checked against its digest. A
// blob is fetched once per repository, since the registry serves it through that
// repository's link.
func (s *Server) PullAll(ctx context.Context, refs []Ref, workers int) PullStats {
	var st PullStats
	var mu sync.Mutex
	var seen sync.Map
	fail := func(format string, a ...any) {
		atomic.AddInt64(&st.Failed, 1)
		mu.Lock()
		if len(st.Failures) < 20 {
			st.Failures = append(st.Failures, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}

	var pullManifest func(repo, ref string)
	pullBlob := func(repo, dgst string) {
		if _, dup := seen.LoadOrStore(repo+"@"+dgst, true); dup {
			return
		}
		body, _, err := get(ctx, client, s.URL+"/v2/"+repo+"/blobs/"+dgst, "")
		if err != nil {
			fail("%s blob %s: %v", repo, dgst, err)
			return
		}
		if got := digest(body); got != dgst {
			fail("%s blob %s: content hashes to %s", repo, dgst, got)
			return
		}
		atomic.AddInt64(&st.Blobs, 1)
	}
	pullManifest = func(repo, ref string) {
		body, header, err := get(ctx, client, s.URL+"/v2/"+repo+"/manifests/"+ref, accept)
		if err != nil {
			fail("%s:%s manifest: %v", repo, ref, err)
			return
		}
		d := digest(body)
		if h := header.Get("Docker-Content-Digest"); h != d || (strings.HasPrefix(ref, "sha256:") && ref != d) {
			fail("%s:%s manifest: content hashes to %s, served as %s", repo, ref, d, h)
			return
		}
		atomic.AddInt64(&st.Manifests, 1)
		var m struct {
			Config    *struct{ Digest string }  `json:"config"`
			Layers    []struct{ Digest string } `json:"layers"`
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			fail("%s:%s manifest: %v", repo, ref, err)
			return
		}
		for _, c := range m.Manifests {
			pullManifest(repo, c.Digest)
		}
		if m.Config != nil {
			pullBlob(repo, m.Config.Digest)
		}
		for _, l := range m.Layers {
			pullBlob(repo, l.Digest)
		}
	}

	work := make(chan Ref)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				pullManifest(r.Repo, r.Reference)
			}
		}()
	}
	for _, r := range refs {
		if ctx.Err() != nil {
			break
		}
		work <- r
	}
	close(work)
	wg.Wait()
	return st
}

func get(ctx context.Context, c *http.Client, url, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	return body, resp.Header, nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
