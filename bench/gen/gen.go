package gen

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
)

// Media types written into the tree.
const (
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayer       = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtOCIEmpty       = "application/vnd.oci.empty.v1+json"
	mtCosignPayload  = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// referrerKinds are (artifactType, layer media type) of OCI 1.1 referrers as pushed by
// common tools.
var referrerKinds = [][2]string{
	{"application/vnd.dev.cosign.artifact.sig.v1+json", mtCosignPayload},
	{"application/spdx+json", "application/spdx+json"},
	{"application/vnd.cncf.notary.signature", "application/jose+json"},
	{"application/vnd.in-toto+json", "application/vnd.in-toto+json"},
}

var platforms = []platform{
	{Architecture: "amd64", OS: "linux"},
	{Architecture: "arm64", OS: "linux", Variant: "v8"},
	{Architecture: "arm", OS: "linux", Variant: "v7"},
	{Architecture: "ppc64le", OS: "linux"},
	{Architecture: "s390x", OS: "linux"},
	{Architecture: "386", OS: "linux"},
}

// epoch anchors every time written into content, so that content depends on the seed only.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Stats counts what a generation wrote (or, for Count, would write).
type Stats struct {
	Files        int64 // every file
	Blobs        int64 // blobs/.../data files
	Revisions    int64 // manifest revision links
	LayerLinks   int64 // _layers links
	TagLinks     int64 // tag current and index links
	UploadFiles  int64 // files under _uploads
	Repositories int64
	Tags         int64
	StoredBytes  int64 // bytes of blob data on disk
}

func (s *Stats) add(o *Stats) {
	s.Files += o.Files
	s.Blobs += o.Blobs
	s.Revisions += o.Revisions
	s.LayerLinks += o.LayerLinks
	s.TagLinks += o.TagLinks
	s.UploadFiles += o.UploadFiles
	s.Repositories += o.Repositories
	s.Tags += o.Tags
	s.StoredBytes += o.StoredBytes
}

// Generate writes the tree described by cfg under root (the registry's rootdirectory),
// which must not hold a docker/registry/v2 tree yet.
func Generate(ctx context.Context, root string, cfg Config) (Stats, error) {
	if _, err := os.Stat(root + "/" + layout.V2Dir); err == nil {
		return Stats{}, fmt.Errorf("%s already holds a registry tree", root)
	}
	// The 256 blob prefix directories exist in any sizeable registry; creating them up
	// front spares every blob write a failed mkdir.
	for i := range 256 {
		if err := os.MkdirAll(fmt.Sprintf("%s/%s/%02x", root, layout.Sha256BlobsDir, i), 0o755); err != nil {
			return Stats{}, err
		}
	}
	return run(ctx, cfg, fsSink{root: root})
}

// Count computes the Stats of the tree cfg describes without writing anything.
func Count(cfg Config) (Stats, error) {
	return run(context.Background(), cfg, countSink{})
}

// sink receives the files of the tree; dir is relative to the storage root.
type sink interface {
	put(dir, name string, data []byte) error
}

type countSink struct{}

func (countSink) put(string, string, []byte) error { return nil }

type fsSink struct{ root string }

func (s fsSink) put(dir, name string, data []byte) error {
	d := s.root + "/" + dir
	// One mkdir per new leaf directory, which is the common case; MkdirAll only when
	// the parent is missing too.
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(d+"/"+name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil // content shared by several repositories, already written
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type generator struct {
	cfg   Config
	out   sink
	names []string
	pool  []poolLayer
	// emptyOnce writes the OCI empty config "{}" when the first referrer needs it.
	emptyOnce sync.Once
	emptyErr  error
	emptyDesc descriptor
	emptyStat Stats
}

type poolLayer struct {
	digest layout.Digest
	diffID string
	size   int64
	data   []byte
}

// Random streams: each repository and pool layer has its own, so that the tree does
// not depend on the order in which workers run.
const (
	streamRepo = 1 << 40
	streamPool = 2 << 40
	streamName = 3 << 40
)

func run(ctx context.Context, cfg Config, out sink) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	g := &generator{cfg: cfg, out: out, names: repoNames(cfg)}
	g.emptyDesc = descriptor{MediaType: mtOCIEmpty, Digest: digestOf([]byte("{}")).String(), Size: 2}

	var total Stats
	var mu sync.Mutex
	var failed atomic.Pointer[error]
	parallel := func(n int, one func(i int, st *Stats) error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st Stats
				for failed.Load() == nil && ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= n {
						break
					}
					if err := one(i, &st); err != nil {
						failed.CompareAndSwap(nil, &err)
					}
				}
				mu.Lock()
				total.add(&st)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}

	g.pool = make([]poolLayer, cfg.SharedPool)
	if cfg.SharedShare > 0 {
		parallel(cfg.SharedPool, func(i int, st *Stats) error {
			r := rand.New(rand.NewPCG(cfg.Seed, streamPool+uint64(i)))
			data := randomBytes(r, cfg.LayerBytes)
			g.pool[i] = poolLayer{digest: digestOf(data), diffID: randomDigest(r), size: g.layerSize(r, len(data)), data: data}
			return g.blob(st, g.pool[i].digest, data)
		})
	}
	parallel(cfg.Repos, func(i int, st *Stats) error { return g.repo(i, st) })
	if p := failed.Load(); p != nil {
		return total, *p
	}
	if err := ctx.Err(); err != nil {
		return total, err
	}
	total.add(&g.emptyStat)
	return total, g.emptyErr
}

// repoNames names repositories "teamNN/app-NNNN", some single-component, some nested
// inside the previous repository.
func repoNames(cfg Config) []string {
	r := rand.New(rand.NewPCG(cfg.Seed, streamName))
	teams := max(1, cfg.Repos/25)
	names := make([]string, cfg.Repos)
	depth := 0
	for i := range names {
		switch {
		case i > 0 && depth < 3 && r.Float64() < cfg.Nested:
			names[i] = fmt.Sprintf("%s/sub-%d", names[i-1], i)
			depth++
		case i%7 == 3:
			names[i] = fmt.Sprintf("tool-%04d", i)
			depth = 0
		default:
			names[i] = fmt.Sprintf("team%02d/app-%04d", i%teams, i)
			depth = 0
		}
	}
	return names
}

func (g *generator) blob(st *Stats, d layout.Digest, data []byte) error {
	st.Files++
	st.Blobs++
	st.StoredBytes += int64(len(data))
	return g.out.put(layout.BlobDir(d), "data", data)
}

func (g *generator) link(st *Stats, dir string, d layout.Digest) error {
	st.Files++
	return g.out.put(dir, layout.Link, []byte(d.String()))
}

// layerSize is what a layer descriptor records: log-uniform between 1 KiB and 200 MiB,
// as real layers range from a config file to a language runtime.
func (g *generator) layerSize(r *rand.Rand, stored int) int64 {
	if g.cfg.TrueSizes {
		return int64(stored)
	}
	return int64(math.Exp(math.Log(1<<10) + r.Float64()*(math.Log(200<<20)-math.Log(1<<10))))
}

// repoWriter holds one repository's state while it is generated.
type repoWriter struct {
	g        *generator
	r        *rand.Rand
	st       *Stats
	name     string
	oci      bool
	idx      int
	created  time.Time
	linked   map[layout.Digest]bool
	manifest []descriptor // every manifest pushed, in order, for referrers
}

func (w *repoWriter) blob(data []byte) (layout.Digest, error) {
	d := digestOf(data)
	return d, w.g.blob(w.st, d, data)
}

func (w *repoWriter) layerLink(d layout.Digest) error {
	if w.linked[d] {
		return nil
	}
	w.linked[d] = true
	w.st.LayerLinks++
	return w.g.link(w.st, layout.LayerDir(w.name, d), d)
}

func (w *repoWriter) revision(data []byte) (layout.Digest, error) {
	d, err := w.blob(data)
	if err != nil {
		return d, err
	}
	w.st.Revisions++
	return d, w.g.link(w.st, layout.RevisionDir(w.name, d), d)
}

func (w *repoWriter) tick() string {
	w.created = w.created.Add(time.Duration(1+w.r.IntN(72)) * time.Hour)
	return w.created.Format(time.RFC3339)
}

func (g *generator) repo(i int, st *Stats) error {
	cfg := g.cfg
	w := &repoWriter{
		g: g, r: rand.New(rand.NewPCG(cfg.Seed, streamRepo+uint64(i))), st: st, name: g.names[i], idx: i,
		linked: map[layout.Digest]bool{},
	}
	st.Repositories++
	// Spread exactly, like moved tags, so that small trees get both kinds too.
	w.oci = math.Floor(float64(i+1)*cfg.OCIShare) > math.Floor(float64(i)*cfg.OCIShare)
	w.created = epoch.Add(time.Duration(w.r.IntN(24*365)) * time.Hour)

	multi := cfg.MultiArchEvery > 0 && i%cfg.MultiArchEvery == 0 && cfg.Children > 0
	plain := cfg.Manifests
	if multi {
		plain -= 1 + cfg.Children
	}
	// Manifests are pushed oldest first; the tags go to the newest ones.
	var tagged []descriptor
	var untagged []descriptor
	for range plain {
		d, err := w.image(platforms[0])
		if err != nil {
			return err
		}
		untagged = append(untagged, d)
	}
	if multi {
		children := make([]descriptor, cfg.Children)
		for c := range children {
			d, err := w.image(platforms[c%len(platforms)])
			if err != nil {
				return err
			}
			d.Platform = &platforms[c%len(platforms)]
			children[c] = d
		}
		d, err := w.index(children)
		if err != nil {
			return err
		}
		tagged = append(tagged, d)
	}
	// Newest first: the plain images still wanted by tags move from untagged to tagged.
	for len(tagged) < cfg.Tags && len(untagged) > 0 {
		tagged = append(tagged, untagged[len(untagged)-1])
		untagged = untagged[:len(untagged)-1]
	}

	// Referrers of any manifest, tagged or not: those of untagged ones must go with them.
	for _, m := range slices.Clone(w.manifest) {
		if cfg.Referrers > 0 && w.r.Float64() < cfg.Referrers {
			if err := w.referrer(m); err != nil {
				return err
			}
		}
	}

	type tagState struct {
		name    string
		current descriptor
		history []descriptor
	}
	var tags []tagState
	signed := map[string]bool{}
	for t := range cfg.Tags {
		if len(tagged) == 0 {
			break
		}
		ts := tagState{name: tagName(cfg, t), current: tagged[t%len(tagged)]}
		// A moved tag: spread exactly over the whole tree (index i*Tags+t), so that the
		// number of history entries is the same whatever the seed.
		gi := float64(i*cfg.Tags + t)
		if math.Floor((gi+1)*cfg.Overwritten) > math.Floor(gi*cfg.Overwritten) && len(untagged) > 0 {
			ts.history = append(ts.history, untagged[w.r.IntN(len(untagged))])
		}
		ts.history = append(ts.history, ts.current)
		tags = append(tags, ts)
		if cfg.Cosign > 0 && !signed[ts.current.Digest] && w.r.Float64() < cfg.Cosign {
			signed[ts.current.Digest] = true
			sig, err := w.signature(ts.current)
			if err != nil {
				return err
			}
			subject, _ := layout.ParseDigest(ts.current.Digest)
			tags = append(tags, tagState{name: "sha256-" + subject.Hex() + ".sig", current: sig, history: []descriptor{sig}})
		}
	}
	for _, ts := range tags {
		st.Tags++
		cur, _ := layout.ParseDigest(ts.current.Digest)
		st.TagLinks++
		if err := g.link(st, layout.TagDir(w.name, ts.name)+"/current", cur); err != nil {
			return err
		}
		for _, h := range ts.history {
			d, _ := layout.ParseDigest(h.Digest)
			st.TagLinks++
			if err := g.link(st, layout.TagIndexDir(w.name, ts.name, d), d); err != nil {
				return err
			}
		}
	}

	if cfg.Uploads > 0 && w.r.Float64() < cfg.Uploads {
		return w.upload()
	}
	return nil
}

func tagName(cfg Config, t int) string {
	switch {
	case t == 0:
		return "latest"
	case cfg.Tags > 20:
		return fmt.Sprintf("build-%d", t)
	default:
		return fmt.Sprintf("1.%d", cfg.Tags-t)
	}
}

// image pushes one image manifest with its config and layers.
func (w *repoWriter) image(p platform) (descriptor, error) {
	cfg := w.g.cfg
	mtManifest, mtConfig, mtLayer := mtDockerManifest, mtDockerConfig, mtDockerLayer
	if w.oci {
		mtManifest, mtConfig, mtLayer = mtOCIManifest, mtOCIConfig, mtOCILayer
	}
	created := w.tick()
	layers := make([]descriptor, 0, cfg.Layers)
	diffIDs := make([]string, 0, cfg.Layers)
	history := make([]historyEntry, 0, cfg.Layers)
	used := map[int]bool{}
	for l := range cfg.Layers {
		var d layout.Digest
		var size int64
		var diffID string
		if cfg.SharedShare > 0 && w.r.Float64() < cfg.SharedShare {
			j := w.r.IntN(len(w.g.pool))
			for used[j] {
				j = w.r.IntN(len(w.g.pool))
			}
			used[j] = true
			pl := &w.g.pool[j]
			d, size, diffID = pl.digest, pl.size, pl.diffID
		} else {
			data := randomBytes(w.r, cfg.LayerBytes)
			var err error
			if d, err = w.blob(data); err != nil {
				return descriptor{}, err
			}
			size, diffID = w.g.layerSize(w.r, len(data)), randomDigest(w.r)
		}
		if err := w.layerLink(d); err != nil {
			return descriptor{}, err
		}
		layers = append(layers, descriptor{MediaType: mtLayer, Digest: d.String(), Size: size})
		diffIDs = append(diffIDs, diffID)
		history = append(history, historyEntry{Created: created, CreatedBy: fmt.Sprintf("/bin/sh -c #(nop) step %d of %s", l, w.name)})
	}
	config, err := json.Marshal(imageConfig{
		Architecture: p.Architecture, OS: p.OS, Variant: p.Variant, Created: created,
		Config: containerConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP=" + w.name},
			Cmd:        []string{"/usr/local/bin/app", "--serve"},
			WorkingDir: "/srv",
			Labels:     map[string]string{"org.opencontainers.image.source": "https://git.example.com/" + w.name, "build": randomHex(w.r, 8)},
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: diffIDs},
		History: history,
	})
	if err != nil {
		return descriptor{}, err
	}
	configDigest, err := w.blob(config)
	if err != nil {
		return descriptor{}, err
	}
	if err := w.layerLink(configDigest); err != nil {
		return descriptor{}, err
	}
	m := imageManifest{
		SchemaVersion: 2, MediaType: mtManifest,
		Config: descriptor{MediaType: mtConfig, Digest: configDigest.String(), Size: int64(len(config))},
		Layers: layers,
	}
	if w.oci {
		m.Annotations = map[string]string{"org.opencontainers.image.created": created}
	}
	return w.pushManifest(mtManifest, m)
}

func (w *repoWriter) pushManifest(mediaType string, m any) (descriptor, error) {
	body, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return descriptor{}, err
	}
	d, err := w.revision(body)
	if err != nil {
		return descriptor{}, err
	}
	desc := descriptor{MediaType: mediaType, Digest: d.String(), Size: int64(len(body))}
	w.manifest = append(w.manifest, desc)
	return desc, nil
}

func (w *repoWriter) index(children []descriptor) (descriptor, error) {
	mt := mtDockerList
	if w.oci {
		mt = mtOCIIndex
	}
	return w.pushManifest(mt, indexManifest{SchemaVersion: 2, MediaType: mt, Manifests: children})
}

// referrer pushes an untagged OCI 1.1 artifact about subject, as the referrers API
// stores it: empty config, one payload layer.
func (w *repoWriter) referrer(subject descriptor) error {
	kind := referrerKinds[w.r.IntN(len(referrerKinds))]
	payloadData := randomBytes(w.r, 64+w.r.IntN(192))
	payload, err := w.blob(payloadData)
	if err != nil {
		return err
	}
	if err := w.layerLink(payload); err != nil {
		return err
	}
	if err := w.g.empty(); err != nil {
		return err
	}
	if err := w.layerLink(digestOf([]byte("{}"))); err != nil {
		return err
	}
	subj := subject
	subj.Platform = nil
	_, err = w.pushManifest(mtOCIManifest, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest, ArtifactType: kind[0],
		Config:      w.g.emptyDesc,
		Layers:      []descriptor{{MediaType: kind[1], Digest: payload.String(), Size: int64(len(payloadData))}},
		Subject:     &subj,
		Annotations: map[string]string{"org.opencontainers.image.created": w.tick()},
	})
	return err
}

// signature pushes a cosign-style signature of subject (tagged by the caller).
func (w *repoWriter) signature(subject descriptor) (descriptor, error) {
	payload, err := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": "registry.example.com/" + w.name},
			"image":    map[string]string{"docker-manifest-digest": subject.Digest},
			"type":     "cosign container image signature",
		},
		"optional": nil,
	})
	if err != nil {
		return descriptor{}, err
	}
	payloadDigest, err := w.blob(payload)
	if err != nil {
		return descriptor{}, err
	}
	config, err := json.Marshal(imageConfig{
		Created: "0001-01-01T00:00:00Z", RootFS: rootFS{Type: "layers", DiffIDs: []string{payloadDigest.String()}},
		History: []historyEntry{{Created: "0001-01-01T00:00:00Z"}},
	})
	if err != nil {
		return descriptor{}, err
	}
	configDigest, err := w.blob(config)
	if err != nil {
		return descriptor{}, err
	}
	for _, d := range []layout.Digest{payloadDigest, configDigest} {
		if err := w.layerLink(d); err != nil {
			return descriptor{}, err
		}
	}
	return w.pushManifest(mtOCIManifest, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest,
		Config: descriptor{MediaType: mtOCIConfig, Digest: configDigest.String(), Size: int64(len(config))},
		Layers: []descriptor{{
			MediaType: mtCosignPayload, Digest: payloadDigest.String(), Size: int64(len(payload)),
			Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(randomBytes(w.r, 70))},
		}},
	})
}

// upload leaves an abandoned upload as the registry writes one: data, startedat and
// a hash state.
func (w *repoWriter) upload() error {
	id := fmt.Sprintf("%s-%s-%s-%s-%s", randomHex(w.r, 4), randomHex(w.r, 2), randomHex(w.r, 2), randomHex(w.r, 2), randomHex(w.r, 6))
	dir := layout.UploadDir(w.name, id)
	data := randomBytes(w.r, 128)
	started := epoch.Add(time.Duration(w.r.IntN(1000)) * time.Hour).Format(time.RFC3339Nano)
	for _, f := range []struct {
		dir, name string
		data      []byte
	}{
		{dir, "data", data},
		{dir, "startedat", []byte(started)},
		{dir + "/hashstates/sha256", fmt.Sprint(len(data)), randomBytes(w.r, 108)},
	} {
		w.st.Files++
		w.st.UploadFiles++
		if err := w.g.out.put(f.dir, f.name, f.data); err != nil {
			return err
		}
	}
	return nil
}

// empty writes the OCI empty config blob once for the whole tree.
func (g *generator) empty() error {
	g.emptyOnce.Do(func() {
		g.emptyErr = g.blob(&g.emptyStat, digestOf([]byte("{}")), []byte("{}"))
	})
	return g.emptyErr
}

func digestOf(data []byte) layout.Digest { return sha256.Sum256(data) }

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func randomHex(r *rand.Rand, n int) string { return hex.EncodeToString(randomBytes(r, n)) }

func randomDigest(r *rand.Rand) string { return "sha256:" + randomHex(r, 32) }

// JSON shapes of the manifests and configs, in the field order tools write them.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type imageManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type indexManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Variant      string          `json:"variant,omitempty"`
	Created      string          `json:"created"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []historyEntry  `json:"history"`
}

type containerConfig struct {
	Env        []string          `json:"Env,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type historyEntry struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by,omitempty"`
}
