package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ChurnKind is what one push of a Churn does.
type ChurnKind string

// The pushes of a Churn. The last three race a cleaning in ways a grace period does
// not cover (docs/registry-storage.md, "Time, races and the live registry").
const (
	// ChurnSeed is the seeding's own tagged pushes (the images an old tag moved to).
	ChurnSeed ChurnKind = "seed"
	// ChurnNew is a new image of fresh layers, pushed by tag.
	ChurnNew ChurnKind = "new"
	// ChurnReuse is a new image (new config) made of layers of an old untagged image,
	// whose blobs are unreferenced, pushed by tag (or by digest only, a quarter of
	// the time) into the old image's repository or another one: the client HEADs the
	// old layers, finds them and skips their upload (upstream distribution issue 3045).
	ChurnReuse ChurnKind = "reuse-old-layers"
	// ChurnTagOld puts a new tag onto an old untagged manifest by digest (Tag: GET it,
	// PUT it under the tag), whose revision link is old.
	ChurnTagOld ChurnKind = "tag-old-manifest"
	// ChurnOverwrite moves one of the pusher's tags to a new image, leaving the old
	// target untagged.
	ChurnOverwrite ChurnKind = "overwrite-tag"
)

// ChurnKinds are the kinds of push a churn's pushers make, in report order.
var ChurnKinds = []ChurnKind{ChurnNew, ChurnReuse, ChurnTagOld, ChurnOverwrite}

// ChurnOptions tune a Churn; the zero value is usable.
type ChurnOptions struct {
	// Repos are the repositories pushed to (default soak/app, soak/base, soak/team/tools).
	Repos []string
	// Seed determines every image, choice and name.
	Seed uint64
	// Old is how many old untagged images SeedOld pushes (default 16). Two in every
	// eight are ballast: no pusher ever uses them, so a cleaning must delete them all.
	Old int
	// OpTimeout bounds one push (default 30s): a push that takes longer fails.
	OpTimeout time.Duration
	// MaxOpsPerPusher bounds one pusher's pushes whatever the duration (default 5000).
	MaxOpsPerPusher int
}

// ChurnPush is one push a Churn attempted.
type ChurnPush struct {
	// Pusher is the pusher's number, -1 for the seeding.
	Pusher int
	// Seq numbers the pusher's pushes from 0.
	Seq  int
	Kind ChurnKind
	// Ref is "repo:tag", or "repo@digest" for a push by digest only.
	Ref string
	// Digest is the manifest's digest, Blobs its config's and layers'.
	Digest string
	Blobs  []string
	// Done is when the registry answered (or the push failed).
	Done time.Time
	// Err is nil when the registry acknowledged the push: its manifest PUT succeeded.
	Err error
	// ErrKind classifies Err: the registry's error codes (e.g. "BLOB_UNKNOWN"),
	// "timeout", "network" or "other".
	ErrKind string
	// Uncertain says a failed push may have landed all the same (no answer, or a
	// server error): the tag may point at Digest.
	Uncertain bool
}

// Acknowledged says the registry acknowledged the push.
func (p ChurnPush) Acknowledged() bool { return p.Err == nil }

// ChurnBroken is an image a Churn expected to pull, and what went wrong.
type ChurnBroken struct {
	Push ChurnPush
	Err  error
	// Missing are the digests (the manifest's, its config's, its layers') the registry
	// does not serve whole, each with what it answered.
	Missing map[string]string
}

func (b ChurnBroken) String() string {
	s := fmt.Sprintf("%s (%s by pusher %d, #%d, acknowledged %s) -> %s: %v",
		b.Push.Ref, b.Push.Kind, b.Push.Pusher, b.Push.Seq, b.Push.Done.Format("15:04:05.000"), b.Push.Digest, b.Err)
	ds := make([]string, 0, len(b.Missing))
	for d := range b.Missing {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		s += fmt.Sprintf("\n\tnot served: %s: %s", d, b.Missing[d])
	}
	return s
}

// diagnose finds which parts of a broken image the registry does not serve whole.
func diagnose(ctx context.Context, host string, p ChurnPush) map[string]string {
	repo, _ := SplitRef(p.Ref)
	out := map[string]string{}
	if code, err := ManifestStatus(ctx, host, repo+"@"+p.Digest); err != nil || code != 200 {
		out[p.Digest] = fmt.Sprintf("manifest HEAD %d %v", code, err)
	}
	for _, d := range p.Blobs {
		head, herr := BlobStatus(ctx, host, repo, d)
		if _, err := FetchBlob(ctx, host, repo, d); err != nil || herr != nil || head != 200 {
			out[d] = fmt.Sprintf("blob HEAD %d %v; GET: %v", head, herr, err)
		}
	}
	return out
}

// ChurnCounts sum up a churn.
type ChurnCounts struct {
	// Old is the number of old untagged images seeded, Ballast those of them no
	// pusher uses.
	Old, Ballast int
	// Attempts, Acknowledged and Failed count the churn's pushes by kind (the
	// seeding's included under ChurnSeed).
	Attempts, Acknowledged, Failed map[ChurnKind]int
	// The same, all kinds but the seeding's together.
	TotalAttempts, TotalAcknowledged, TotalFailed int
	// ByDigestOnly counts the acknowledged pushes by digest only (expected to go).
	ByDigestOnly int
	// FailureKinds counts failed pushes by ErrKind; FailureSamples keeps the first
	// error of each kind.
	FailureKinds   map[string]int
	FailureSamples map[string]string
	// Expected is how many refs Verify pulls: the last acknowledged push of each tag.
	Expected int
}

func (c ChurnCounts) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d pushes, %d acknowledged, %d failed (", c.TotalAttempts, c.TotalAcknowledged, c.TotalFailed)
	for i, k := range ChurnKinds {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d/%d acknowledged", k, c.Acknowledged[k], c.Attempts[k])
	}
	fmt.Fprintf(&b, "); %d by digest only; %d tags expected to pull; %d old images seeded (%d ballast)",
		c.ByDigestOnly, c.Expected, c.Old, c.Ballast)
	if len(c.FailureKinds) > 0 {
		kinds := make([]string, 0, len(c.FailureKinds))
		for k := range c.FailureKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		b.WriteString("; failures:")
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s x%d", k, c.FailureKinds[k])
		}
	}
	return b.String()
}

// oldImage is an image the churn pushed that is untagged (or may become so): seeded,
// overwritten, or pushed by digest only.
type oldImage struct {
	repo    string
	digest  string
	format  Format
	layers  []v1.Layer
	blobs   []string // manifest, config, layers
	ballast bool
}

// Churn is a push workload for a registry under cleaning: concurrent pushers push
// for a fixed time and every push is recorded, acknowledged or not, so that Verify can
// pull back everything the registry acknowledged and must still serve.
//
// Use: NewChurn, SeedOld (before any cleaning), then Run while the registry is
// cleaned, then Verify. Every image, choice and name derives from the seed; which
// pushes succeed depends on timing.
type Churn struct {
	host string
	o    ChurnOptions

	mu      sync.Mutex
	old     []*oldImage
	bait    []*oldImage // old images the pushers use
	pushes  []ChurnPush // in the order they ended; one pusher's in its own order
	touched map[string]bool
}

// NewChurn is a workload against the registry at host (host:port).
func NewChurn(host string, o ChurnOptions) *Churn {
	if len(o.Repos) == 0 {
		o.Repos = []string{"soak/app", "soak/base", "soak/team/tools"}
	}
	if o.Old <= 0 {
		o.Old = 16
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 30 * time.Second
	}
	if o.MaxOpsPerPusher <= 0 {
		o.MaxOpsPerPusher = 5000
	}
	return &Churn{host: host, o: o, touched: map[string]bool{}}
}

// SeedOld pushes the old untagged images: even ones by digest only, odd ones by a
// tag ("old-N") that then moves to another image (kept, and expected by Verify).
// Their manifests are untagged and their blobs referenced by nothing else, so a
// cleaning deletes them unless a push takes them up again. Call it once, before Run.
func (c *Churn) SeedOld(ctx context.Context) error {
	for i := 0; i < c.o.Old; i++ {
		f := Format(i % 2)
		seed := Derive(c.o.Seed, "old", i)
		layers := []v1.Layer{Layer(Derive(seed, "layer", 0), f), Layer(Derive(seed, "layer", 1), f)}
		img := ImageWithLayers(seed, f, layers...)
		o := &oldImage{repo: c.o.Repos[i%len(c.o.Repos)], digest: DigestOf(img), format: f, layers: layers,
			ballast: i%8 == 3 || i%8 == 6}
		o.blobs = append([]string{o.digest}, BlobsOf(img)...)
		if i%2 == 0 {
			if _, err := PushImage(ctx, c.host, o.repo, img); err != nil {
				return fmt.Errorf("seeding old image %d: %w", i, err)
			}
		} else {
			tag := fmt.Sprintf("%s:old-%d", o.repo, i)
			if _, err := PushImage(ctx, c.host, tag, img); err != nil {
				return fmt.Errorf("seeding old image %d: %w", i, err)
			}
			mover := Image(Derive(c.o.Seed, "old-mover", i), 1, f)
			_, err := PushImage(ctx, c.host, tag, mover)
			c.record(ChurnPush{Pusher: -1, Seq: i, Kind: ChurnSeed, Ref: tag, Digest: DigestOf(mover), Done: time.Now(), Err: err})
			if err != nil {
				return fmt.Errorf("moving the tag of old image %d: %w", i, err)
			}
		}
		c.mu.Lock()
		c.old = append(c.old, o)
		if !o.ballast {
			c.bait = append(c.bait, o)
		}
		c.mu.Unlock()
	}
	return nil
}

// Run runs pushers concurrent pushers for d (each stops after its push in progress
// then), and returns when they all have. Pushes that fail are recorded and counted,
// never fatal; Run fails only when ctx is done before d.
func (c *Churn) Run(ctx context.Context, pushers int, d time.Duration) error {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for p := 0; p < pushers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.pusher(ctx, p, deadline)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// pusherTag is one of a pusher's own tags: no other pusher pushes it, so the
// pusher's order of pushes is the tag's.
type pusherTag struct {
	ref    string // repo:tag
	repo   string
	target *oldImage // its last acknowledged target, nil before one
}

// pusher pushes until the deadline. Besides the seeded old images, it takes up
// images it untagged itself (overwritten targets, pushes by digest only): a cleaning
// that runs meanwhile finds them unreferenced, so the races of old content go on for
// the whole churn, not only until the first run deleted the seeded images.
func (c *Churn) pusher(ctx context.Context, p int, deadline time.Time) {
	rng := rand.New(rand.NewPCG(c.o.Seed, uint64(p)+1))
	var tags []*pusherTag
	var untagged []*oldImage // this pusher's untagged images, oldest first
	// pick chooses an untagged image to take up: half the time one of the pusher's
	// eight latest, the likeliest to be in a run's quarantine, else any.
	pick := func() *oldImage {
		if len(untagged) > 0 && rng.IntN(2) == 0 {
			recent := untagged[max(0, len(untagged)-8):]
			return recent[rng.IntN(len(recent))]
		}
		if i := rng.IntN(len(c.bait) + len(untagged)); i < len(c.bait) {
			return c.bait[i]
		}
		return untagged[rng.IntN(len(untagged))]
	}
	for seq := 0; seq < c.o.MaxOpsPerPusher && time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
		seed := Derive(c.o.Seed, fmt.Sprintf("pusher-%d", p), seq)
		f := Format(rng.IntN(2))
		repo := c.o.Repos[rng.IntN(len(c.o.Repos))]
		newTag := func(repo string) *pusherTag {
			t := &pusherTag{ref: fmt.Sprintf("%s:p%d-%d", repo, p, seq), repo: repo}
			tags = append(tags, t)
			return t
		}
		roll := rng.IntN(100)
		var kind ChurnKind
		switch {
		case roll < 30:
			kind = ChurnNew
		case roll < 60:
			kind = ChurnReuse
		case roll < 75:
			kind = ChurnTagOld
		default:
			kind = ChurnOverwrite
		}
		// Without old images (no SeedOld) or tags yet, push a new image instead.
		if (kind == ChurnReuse || kind == ChurnTagOld) && len(c.bait)+len(untagged) == 0 ||
			kind == ChurnOverwrite && len(tags) == 0 {
			kind = ChurnNew
		}
		push := ChurnPush{Pusher: p, Seq: seq, Kind: kind}
		opCtx, cancel := context.WithTimeout(ctx, c.o.OpTimeout)
		var tag *pusherTag
		var pushed *oldImage // what the push put in the registry
		pushImage := func(ref string, img v1.Image, layers []v1.Layer) {
			pushed = &oldImage{repo: repo, digest: DigestOf(img), format: f, layers: layers}
			pushed.blobs = append([]string{pushed.digest}, BlobsOf(img)...)
			push.Digest, push.Blobs = pushed.digest, pushed.blobs[1:]
			_, push.Err = PushImage(opCtx, c.host, ref, img)
		}
		switch kind {
		case ChurnNew, ChurnOverwrite:
			if kind == ChurnNew {
				tag = newTag(repo)
			} else {
				tag = tags[rng.IntN(len(tags))]
				repo = tag.repo
			}
			layers := make([]v1.Layer, 1+rng.IntN(2))
			for i := range layers {
				layers[i] = Layer(Derive(seed, "layer", i), f)
			}
			push.Ref = tag.ref
			pushImage(push.Ref, ImageWithLayers(seed, f, layers...), layers)
		case ChurnReuse:
			o := pick()
			layers := append([]v1.Layer(nil), o.layers...)
			rng.Shuffle(len(layers), func(i, j int) { layers[i], layers[j] = layers[j], layers[i] })
			layers = layers[:1+rng.IntN(len(layers))]
			c.touch(blobDigests(layers)...)
			f = o.format
			if rng.IntN(2) == 0 {
				layers = append(layers, Layer(Derive(seed, "fresh", 0), f))
			}
			if rng.IntN(2) == 0 {
				repo = o.repo
			}
			img := ImageWithLayers(seed, f, layers...)
			if rng.IntN(4) == 0 {
				push.Ref = repo + "@" + DigestOf(img)
				pushImage(repo, img, layers)
			} else {
				tag = newTag(repo)
				push.Ref = tag.ref
				pushImage(push.Ref, img, layers)
			}
		case ChurnTagOld:
			o := pick()
			c.touch(o.blobs...)
			repo = o.repo
			tag = newTag(repo)
			push.Ref, push.Digest, push.Blobs = tag.ref, o.digest, o.blobs[1:]
			push.Err = Tag(opCtx, c.host, repo, o.digest, strings.TrimPrefix(tag.ref, repo+":"))
			pushed = o
		}
		cancel()
		push.Done = time.Now()
		switch {
		case push.Err != nil:
		case tag == nil: // by digest only: untagged from the start
			untagged = append(untagged, pushed)
		default:
			if tag.target != nil && tag.target.digest != pushed.digest {
				untagged = append(untagged, tag.target)
			}
			tag.target = pushed
		}
		c.record(push)
	}
}

// blobDigests are the layers' digests.
func blobDigests(layers []v1.Layer) []string {
	out := make([]string, len(layers))
	for i, l := range layers {
		out[i] = DigestOf(l)
	}
	return out
}

func (c *Churn) touch(digests ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range digests {
		c.touched[d] = true
	}
}

func (c *Churn) record(p ChurnPush) {
	if p.Err != nil {
		p.ErrKind, p.Uncertain = classifyPushError(p.Err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushes = append(c.pushes, p)
}

// classifyPushError names what made a push fail, and whether it may have landed all
// the same: the registry's refusal (a 4xx answer) is certain, no answer or a server
// error is not.
func classifyPushError(err error) (kind string, uncertain bool) {
	var te *transport.Error
	switch {
	case errors.As(err, &te):
		seen := map[string]bool{}
		var codes []string
		for _, d := range te.Errors {
			if c := string(d.Code); !seen[c] {
				seen[c] = true
				codes = append(codes, c)
			}
		}
		sort.Strings(codes)
		if len(codes) == 0 {
			codes = []string{fmt.Sprintf("HTTP %d", te.StatusCode)}
		}
		return strings.Join(codes, "+"), te.StatusCode < 400 || te.StatusCode >= 500
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", true
	case errors.Is(err, context.Canceled):
		return "canceled", true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "network", true
	}
	return "other", true
}

// Pushes are every push attempted, the seeding's included, in the order they ended.
func (c *Churn) Pushes() []ChurnPush {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ChurnPush(nil), c.pushes...)
}

// expectation is what a tag must resolve to: its last acknowledged push, or the
// target of a later push that failed without an answer (it may have landed).
type expectation struct {
	last ChurnPush
	alt  map[string]bool
}

// expected are the tags Verify pulls, sorted by ref: each one's last acknowledged
// push. Earlier targets of a tag are untagged now, and pushes by digest only were
// never tagged: a cleaning may delete them, so they are not expected.
func (c *Churn) expected() []expectation {
	c.mu.Lock()
	defer c.mu.Unlock()
	byRef := map[string]*expectation{}
	var refs []string
	for _, p := range c.pushes {
		if strings.Contains(p.Ref, "@") {
			continue
		}
		e := byRef[p.Ref]
		switch {
		case p.Acknowledged():
			if e == nil {
				e = &expectation{}
				byRef[p.Ref] = e
				refs = append(refs, p.Ref)
			}
			e.last, e.alt = p, nil
		case p.Uncertain && e != nil:
			if e.alt == nil {
				e.alt = map[string]bool{}
			}
			e.alt[p.Digest] = true
		}
	}
	sort.Strings(refs)
	out := make([]expectation, len(refs))
	for i, r := range refs {
		out[i] = *byRef[r]
	}
	return out
}

// Expected are the acknowledged pushes Verify pulls (see Verify), sorted by ref.
func (c *Churn) Expected() []ChurnPush {
	exp := c.expected()
	out := make([]ChurnPush, len(exp))
	for i, e := range exp {
		out[i] = e.last
	}
	return out
}

// Verify pulls, from the registry at host, the last acknowledged push of every tag,
// every manifest and blob verified against its digest, and checks that the tag still
// resolves to the digest acknowledged. It returns the broken ones, sorted by ref; an
// error only when ctx ends first.
func (c *Churn) Verify(ctx context.Context, host string) ([]ChurnBroken, error) {
	exp := c.expected()
	broken := make([]*ChurnBroken, len(exp))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				e := exp[i]
				pulled, err := Pull(ctx, host, e.last.Ref)
				switch {
				case err != nil:
					broken[i] = &ChurnBroken{Push: e.last, Err: err, Missing: diagnose(ctx, host, e.last)}
				case pulled.Digest != e.last.Digest && !e.alt[pulled.Digest]:
					broken[i] = &ChurnBroken{Push: e.last, Err: fmt.Errorf("tag resolves to %s", pulled.Digest)}
				}
			}
		}()
	}
	for i := range exp {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []ChurnBroken
	for _, b := range broken {
		if b != nil {
			out = append(out, *b)
		}
	}
	return out, nil
}

// UntouchedOldBlobs are the blobs (manifests, configs, layers) of the seeded old
// images that no push ever used, sorted: the ballast's all, and the rest of the
// bait's. Nothing references them once their manifests are untagged, so a cleaning
// with --grace 0 after the churn must have deleted every one.
func (c *Churn) UntouchedOldBlobs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, o := range c.old {
		for _, d := range o.blobs {
			if !c.touched[d] && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	return out
}

// OldManifests are the seeded old images as "repo@digest", ballast first.
func (c *Churn) OldManifests() (ballast, bait []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.old {
		if o.ballast {
			ballast = append(ballast, o.repo+"@"+o.digest)
		} else {
			bait = append(bait, o.repo+"@"+o.digest)
		}
	}
	return ballast, bait
}

// Counts sum up the pushes so far.
func (c *Churn) Counts() ChurnCounts {
	exp := len(c.expected())
	c.mu.Lock()
	defer c.mu.Unlock()
	n := ChurnCounts{Old: len(c.old), Attempts: map[ChurnKind]int{}, Acknowledged: map[ChurnKind]int{},
		Failed: map[ChurnKind]int{}, FailureKinds: map[string]int{}, FailureSamples: map[string]string{}, Expected: exp}
	for _, o := range c.old {
		if o.ballast {
			n.Ballast++
		}
	}
	for _, p := range c.pushes {
		n.Attempts[p.Kind]++
		if p.Kind != ChurnSeed {
			n.TotalAttempts++
		}
		if p.Acknowledged() {
			n.Acknowledged[p.Kind]++
			if p.Kind != ChurnSeed {
				n.TotalAcknowledged++
			}
			if strings.Contains(p.Ref, "@") {
				n.ByDigestOnly++
			}
			continue
		}
		n.Failed[p.Kind]++
		if p.Kind != ChurnSeed {
			n.TotalFailed++
		}
		k := string(p.Kind) + ": " + p.ErrKind
		n.FailureKinds[k]++
		if _, ok := n.FailureSamples[k]; !ok {
			n.FailureSamples[k] = fmt.Sprintf("%s: %v", p.Ref, p.Err)
		}
	}
	return n
}
