package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// ErrNotFound is returned (wrapped) when the registry answers 404.
var ErrNotFound = errors.New("not found")

// acceptManifests is every manifest type a pull accepts, so the registry never
// converts or refuses one.
var acceptManifests = strings.Join([]string{
	MediaOCIManifest, MediaOCIIndex, MediaDocker, MediaDockerList, MediaSchema1,
	"application/vnd.docker.distribution.manifest.v1+json",
}, ", ")

func manifestRequest(ctx context.Context, method, host, ref string) (*http.Response, error) {
	repo, id := SplitRef(ref)
	if id == "" {
		return nil, fmt.Errorf("%q names no tag or digest", ref)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+"/v2/"+repo+"/manifests/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptManifests)
	return http.DefaultClient.Do(req)
}

// ManifestStatus is the HTTP status of a HEAD request for ref's manifest: 200 when it
// is served, 404 when it is gone.
func ManifestStatus(ctx context.Context, host, ref string) (int, error) {
	resp, err := manifestRequest(ctx, http.MethodHead, host, ref)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// BlobStatus is the HTTP status of a HEAD request for a blob of repo.
func BlobStatus(ctx context.Context, host, repo, digest string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+host+"/v2/"+repo+"/blobs/"+digest, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Pulled is what a pull fetched, every piece verified against its digest.
type Pulled struct {
	// Digest is the manifest ref resolved to.
	Digest string
	// Manifests are every manifest fetched: ref's, index children (recursively) and
	// the subjects of referrers.
	Manifests []string
	// Blobs are every config and layer fetched.
	Blobs []string
}

// manifestFields is the union of the manifest formats' fields a pull follows.
type manifestFields struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
	Config        *Descriptor  `json:"config"`
	Layers        []Descriptor `json:"layers"`
	Subject       *Descriptor  `json:"subject"`
}

// Pull fetches ref ("repo:tag" or "repo@sha256:...") as a client would, and more: the
// manifest, every index child recursively, every config and layer blob, and the
// subject of a referrer, checking every digest and size against what referenced it.
func Pull(ctx context.Context, host, ref string) (*Pulled, error) {
	repo, _ := SplitRef(ref)
	p := &puller{ctx: ctx, host: host, repo: repo, seen: map[string]bool{}, out: &Pulled{}}
	d, err := p.manifest(ref, nil)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	p.out.Digest = d
	sort.Strings(p.out.Blobs)
	return p.out, nil
}

type puller struct {
	ctx  context.Context
	host string
	repo string
	seen map[string]bool
	out  *Pulled
}

func (p *puller) manifest(ref string, want *Descriptor) (string, error) {
	resp, err := manifestRequest(p.ctx, http.MethodGet, p.host, ref)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET manifest %s: %s: %s", ref, resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return "", err
	}
	d := digestOf(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != d {
		return "", fmt.Errorf("manifest %s: header digest %s, content %s", ref, h, d)
	}
	if _, id := SplitRef(ref); strings.HasPrefix(id, "sha256:") && id != d {
		return "", fmt.Errorf("manifest %s: content digest %s", ref, d)
	}
	if want != nil && (want.Digest != d || want.Size != int64(len(body))) {
		return "", fmt.Errorf("manifest %s: got %s (%d bytes), referenced as %s (%d bytes)", ref, d, len(body), want.Digest, want.Size)
	}
	if p.seen[d] {
		return d, nil
	}
	p.seen[d] = true
	p.out.Manifests = append(p.out.Manifests, d)

	var m manifestFields
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("manifest %s: %v", ref, err)
	}
	if m.Config == nil && m.Manifests == nil && m.Layers == nil {
		return "", fmt.Errorf("manifest %s (%s): neither an image nor an index", ref, m.MediaType)
	}
	for _, c := range m.Manifests {
		if _, err := p.manifest(p.repo+"@"+c.Digest, &c); err != nil {
			return "", err
		}
	}
	if m.Config != nil {
		if err := p.blob(*m.Config); err != nil {
			return "", err
		}
	}
	for _, l := range m.Layers {
		if err := p.blob(l); err != nil {
			return "", err
		}
	}
	if m.Subject != nil {
		if _, err := p.manifest(p.repo+"@"+m.Subject.Digest, m.Subject); err != nil {
			return "", fmt.Errorf("subject of %s: %w", d, err)
		}
	}
	return d, nil
}

func (p *puller) blob(want Descriptor) error {
	if p.seen[want.Digest] {
		return nil
	}
	req, err := http.NewRequestWithContext(p.ctx, http.MethodGet, "http://"+p.host+"/v2/"+p.repo+"/blobs/"+want.Digest, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET blob %s@%s: %s", p.repo, want.Digest, resp.Status)
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return err
	}
	if d := digestOf(body); d != want.Digest || int64(len(body)) != want.Size {
		return fmt.Errorf("blob %s@%s: content is %s (%d bytes), want %d bytes", p.repo, want.Digest, d, len(body), want.Size)
	}
	p.seen[want.Digest] = true
	p.out.Blobs = append(p.out.Blobs, want.Digest)
	return nil
}

// Tags lists repo's tags, sorted; a repository the registry does not know gives
// ErrNotFound.
func Tags(ctx context.Context, host, repo string) ([]string, error) {
	var out struct {
		Tags []string `json:"tags"`
	}
	if err := getJSON(ctx, "http://"+host+"/v2/"+repo+"/tags/list", &out); err != nil {
		return nil, err
	}
	sort.Strings(out.Tags)
	return out.Tags, nil
}

// Catalog lists the registry's repositories, sorted, following its pagination.
func Catalog(ctx context.Context, host string) ([]string, error) {
	var all []string
	last := ""
	for {
		var out struct {
			Repositories []string `json:"repositories"`
		}
		// 1000 is the registry's default catalog.maxentries.
		u := "http://" + host + "/v2/_catalog?n=1000&last=" + url.QueryEscape(last)
		if err := getJSON(ctx, u, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Repositories...)
		if len(out.Repositories) < 1000 {
			break
		}
		last = out.Repositories[len(out.Repositories)-1]
	}
	sort.Strings(all)
	return all, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: GET %s: %s", ErrNotFound, u, strings.TrimSpace(string(body)))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}
