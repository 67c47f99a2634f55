package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// op is one request of the prober: a whole pull or a whole push.
type op struct {
	start, end time.Time
	err        error
}

func (o op) took() time.Duration { return o.end.Sub(o.start) }

// stream runs one kind of operation every interval (the next one starts when the
// previous has ended, at the earliest interval after it started) until stopped, and
// records each.
type stream struct {
	name string
	ops  []op
	mu   sync.Mutex
}

func (s *stream) run(ctx context.Context, interval time.Duration, do func(ctx context.Context, i int) error) {
	for i := 0; ; i++ {
		start := time.Now()
		err := do(ctx, i)
		end := time.Now()
		if ctx.Err() != nil {
			return // stopped: this one does not count
		}
		s.mu.Lock()
		s.ops = append(s.ops, op{start, end, err})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(interval))):
		}
	}
}

// Stats is what one stream saw.
type Stats struct {
	Ops, Failed int
	// FailedTime counts, for each failed operation, the time until the next one
	// started (or its own duration, for the last); BlockedTime, for each successful
	// operation slower than the threshold, its excess.
	FailedTime, BlockedTime time.Duration
	// Longest is the longest time between the ends of two successive successful
	// operations: the longest a client waited for a success.
	Longest   time.Duration
	FirstErrs []string
	// Slowest are the three slowest successful operations, when slower than the
	// threshold.
	Slowest []string
}

func (s *stream) stats(blocked time.Duration) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	st.Ops = len(s.ops)
	var lastOK time.Time
	var slow []op
	for i, o := range s.ops {
		if o.err != nil {
			st.Failed++
			next := o.end
			if i+1 < len(s.ops) {
				next = s.ops[i+1].start
			}
			st.FailedTime += next.Sub(o.start)
			if len(st.FirstErrs) < 3 {
				st.FirstErrs = append(st.FirstErrs, fmt.Sprintf("%s after %.2fs: %v", o.start.Format("15:04:05.000"), o.took().Seconds(), o.err))
			}
			continue
		}
		if d := o.took(); d > blocked {
			st.BlockedTime += d - blocked
			slow = append(slow, o)
		}
		if !lastOK.IsZero() {
			st.Longest = max(st.Longest, o.end.Sub(lastOK))
		}
		lastOK = o.end
	}
	sort.Slice(slow, func(i, j int) bool { return slow[i].took() > slow[j].took() })
	for _, o := range slow[:min(3, len(slow))] {
		st.Slowest = append(st.Slowest, fmt.Sprintf("%s took %.2fs", o.start.Format("15:04:05.000"), o.took().Seconds()))
	}
	return st
}

// prober pulls one image and pushes new ones, each stream every interval.
type prober struct {
	addr   string
	pull   stream
	push   stream
	pulled string // the digest the pulled image must resolve to
	seed   uint64
	client *http.Client

	mu     sync.Mutex
	pushed map[string]string // tag -> digest of every push that succeeded
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newProber(addr string, seed uint64) *prober {
	return &prober{addr: addr, seed: seed, pull: stream{name: "pull"}, push: stream{name: "push"},
		pushed: map[string]string{},
		// Longer than any run: a request to a paused registry waits, and counts as
		// blocked, not failed.
		client: &http.Client{Timeout: 10 * time.Minute}}
}

// prepare pushes the image the pull stream pulls.
func (p *prober) prepare(ctx context.Context) error {
	img := harness.Image(harness.Derive(p.seed, "pulled", 0), 2, harness.Docker)
	d, err := p.pushImage(ctx, "probe/pull:latest", img)
	p.pulled = d
	return err
}

func (p *prober) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		p.pull.run(ctx, interval, func(ctx context.Context, _ int) error {
			got, err := harness.Pull(ctx, p.addr, "probe/pull:latest")
			if err == nil && got.Digest != p.pulled {
				err = fmt.Errorf("probe/pull:latest is %s, want %s", got.Digest, p.pulled)
			}
			return err
		})
	}()
	go func() {
		defer p.done.Done()
		p.push.run(ctx, interval, func(ctx context.Context, i int) error {
			tag := fmt.Sprintf("probe/push:%d", i)
			d, err := p.pushImage(ctx, tag, harness.Image(harness.Derive(p.seed, "pushed", i), 1, harness.Docker))
			if err == nil {
				p.mu.Lock()
				p.pushed[tag] = d
				p.mu.Unlock()
			}
			return err
		})
	}()
}

func (p *prober) stop() {
	p.cancel()
	p.done.Wait()
}

// verifyPushed pulls every image a push reported done, digests verified, and returns
// the broken ones.
func (p *prober) verifyPushed(ctx context.Context) (ok int, broken []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for tag, d := range p.pushed {
		got, err := harness.Pull(ctx, p.addr, tag)
		switch {
		case err != nil:
			broken = append(broken, fmt.Sprintf("%s: %v", tag, err))
		case got.Digest != d:
			broken = append(broken, fmt.Sprintf("%s: %s, want %s", tag, got.Digest, d))
		default:
			ok++
		}
	}
	return ok, broken
}

// pushImage pushes an image the way a client does, without retries: for each blob
// a HEAD, and when the registry does not have it a monolithic upload (POST, then PUT
// with the digest); then the manifest. It returns the manifest's digest.
func (p *prober) pushImage(ctx context.Context, ref string, img v1.Image) (string, error) {
	repo, tag, _ := strings.Cut(ref, ":")
	cfgName, err := img.ConfigName()
	if err != nil {
		return "", err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return "", err
	}
	blobs := []struct {
		digest string
		data   []byte
	}{{cfgName.String(), cfg}}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return "", err
		}
		rc, err := l.Compressed()
		if err != nil {
			return "", err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", err
		}
		blobs = append(blobs, struct {
			digest string
			data   []byte
		}{d.String(), data})
	}
	base := "http://" + p.addr + "/v2/" + repo
	for _, b := range blobs {
		resp, err := p.do(ctx, http.MethodHead, base+"/blobs/"+b.digest, nil, "")
		if err != nil {
			return "", err
		}
		if resp.StatusCode == http.StatusOK {
			continue
		}
		resp, err = p.do(ctx, http.MethodPost, base+"/blobs/uploads/", nil, "")
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("POST upload %s: %s", repo, resp.Status)
		}
		loc := resp.Header.Get("Location")
		if strings.HasPrefix(loc, "/") {
			loc = "http://" + p.addr + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		resp, err = p.do(ctx, http.MethodPut, loc+sep+"digest="+b.digest, b.data, "application/octet-stream")
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("PUT blob %s to %s: %s", b.digest, repo, resp.Status)
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	mt, err := img.MediaType()
	if err != nil {
		return "", err
	}
	resp, err := p.do(ctx, http.MethodPut, base+"/manifests/"+tag, raw, string(mt))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT manifest %s: %s", ref, resp.Status)
	}
	return harness.Sha256(raw), nil
}

// do sends one request and reads its answer whole.
func (p *prober) do(ctx context.Context, method, url string, body []byte, ctype string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}
