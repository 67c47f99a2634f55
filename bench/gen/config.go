// Package gen writes a realistic distribution registry storage tree, deterministic
// for a seed, for benchmarks that compare clean-registry with the upstream garbage
// collector on identical trees.
package gen

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// Config is the shape of a generated tree. Manifests counts image manifests and
// indexes per repository; referrers and cosign signatures come on top of it.
type Config struct {
	Seed uint64
	// Repos is the number of repositories; Nested is the share of them created inside
	// the previous one ("a/b" and "a/b/sub-7"), whose names must not be confused.
	Repos  int
	Nested float64
	// Manifests per repository (a multi-arch index and its children included), Layers
	// per image manifest and Tags per repository. The newest manifests are tagged.
	Manifests int
	Layers    int
	Tags      int
	// MultiArchEvery: every Nth repository's newest manifest is a multi-arch index
	// (OCI index or Docker manifest list) over Children untagged platform manifests.
	MultiArchEvery int
	Children       int
	// Overwritten is the share of tags whose history also names an older manifest that
	// is untagged now (a tag that was moved).
	Overwritten float64
	// SharedShare is the share of layer slots taken from a pool of SharedPool layers
	// common across repositories (base images); the others are unique layers.
	SharedShare float64
	SharedPool  int
	// OCIShare is the share of repositories pushed with OCI media types; the others use
	// Docker schema2 and manifest lists.
	OCIShare float64
	// Referrers is the share of manifests with an untagged OCI 1.1 referrer (subject and
	// artifactType); Cosign the share of tagged manifests signed under a cosign-style
	// "sha256-<hex>.sig" tag.
	Referrers float64
	Cosign    float64
	// Uploads is the share of repositories with an abandoned upload (startedat 10 days old).
	Uploads float64
	// LayerBytes is how many random bytes a layer blob really holds; descriptors record
	// realistic sizes (log-uniform 1 KiB to 200 MiB) unless TrueSizes is set.
	LayerBytes int
	TrueSizes  bool
	// Workers write files in parallel.
	Workers int
}

// Presets are the named tree shapes of the benchmark. "medium" is the shape described
// in docs/registry-storage.md, for which upstream's figures are known: no referrers,
// cosign signatures or uploads there, so that its counts compare.
var Presets = map[string]Config{
	"small": {
		Seed: 1, Repos: 40, Nested: 0.1, Manifests: 20, Layers: 5, Tags: 3,
		MultiArchEvery: 5, Children: 2, Overwritten: 4.0 / 15, SharedShare: 0.3, SharedPool: 100,
		OCIShare: 0.5, Referrers: 0.05, Cosign: 0.1, Uploads: 0.1, LayerBytes: 32,
	},
	"medium": {
		Seed: 1, Repos: 500, Nested: 0.1, Manifests: 20, Layers: 5, Tags: 3,
		MultiArchEvery: 5, Children: 2, Overwritten: 4.0 / 15, SharedShare: 0.3, SharedPool: 1000,
		OCIShare: 0.5, LayerBytes: 32,
	},
	"large": {
		Seed: 1, Repos: 4000, Nested: 0.1, Manifests: 20, Layers: 5, Tags: 3,
		MultiArchEvery: 5, Children: 2, Overwritten: 4.0 / 15, SharedShare: 0.3, SharedPool: 8000,
		OCIShare: 0.5, Referrers: 0.02, Cosign: 0.05, Uploads: 0.02, LayerBytes: 32,
	},
	"manytags": {
		Seed: 1, Repos: 5, Manifests: 2000, Layers: 2, Tags: 1000,
		SharedShare: 0.4, SharedPool: 1000, OCIShare: 0.4, LayerBytes: 32,
	},
}

// PresetNames lists the presets in a stable order.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate rejects shapes the generator cannot produce.
func (c Config) Validate() error {
	switch {
	case c.Repos < 1 || c.Manifests < 1:
		return fmt.Errorf("repos and manifests must be at least 1")
	case c.Layers < 0 || c.Tags < 0 || c.Children < 0 || c.SharedPool < 0 || c.LayerBytes < 1:
		return fmt.Errorf("layers, tags, children and shared-pool must not be negative, layer-bytes at least 1")
	case c.MultiArchEvery > 0 && c.Children >= c.Manifests:
		return fmt.Errorf("children (%d) must be fewer than manifests (%d)", c.Children, c.Manifests)
	case c.SharedShare > 0 && c.SharedPool < c.Layers:
		return fmt.Errorf("shared-pool (%d) must hold at least one manifest's layers (%d)", c.SharedPool, c.Layers)
	}
	for _, s := range []float64{c.Nested, c.Overwritten, c.SharedShare, c.OCIShare, c.Referrers, c.Cosign, c.Uploads} {
		if s < 0 || s > 1 {
			return fmt.Errorf("shares must lie between 0 and 1")
		}
	}
	return nil
}

// BindFlags defines a flag for every knob of c on fs.
func BindFlags(fs *flag.FlagSet, c *Config) {
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed: the same seed and knobs give the same tree")
	fs.IntVar(&c.Repos, "repos", c.Repos, "repositories")
	fs.Float64Var(&c.Nested, "nested", c.Nested, "share of repositories nested inside another repository")
	fs.IntVar(&c.Manifests, "manifests", c.Manifests, "manifests per repository (index and its children included)")
	fs.IntVar(&c.Layers, "layers", c.Layers, "layers per image manifest")
	fs.IntVar(&c.Tags, "tags", c.Tags, "tags per repository, on the newest manifests")
	fs.IntVar(&c.MultiArchEvery, "multiarch-every", c.MultiArchEvery, "every Nth repository has a multi-arch index as newest manifest (0: none)")
	fs.IntVar(&c.Children, "children", c.Children, "untagged platform manifests per multi-arch index")
	fs.Float64Var(&c.Overwritten, "overwritten", c.Overwritten, "share of tags whose history names an older, now untagged manifest")
	fs.Float64Var(&c.SharedShare, "shared-share", c.SharedShare, "share of layer slots taken from the pool of common layers")
	fs.IntVar(&c.SharedPool, "shared-pool", c.SharedPool, "layers in the pool common across repositories")
	fs.Float64Var(&c.OCIShare, "oci-share", c.OCIShare, "share of repositories with OCI media types (others: Docker schema2)")
	fs.Float64Var(&c.Referrers, "referrers", c.Referrers, "share of manifests with an untagged OCI 1.1 referrer (subject + artifactType)")
	fs.Float64Var(&c.Cosign, "cosign", c.Cosign, "share of tagged manifests with a cosign signature tag sha256-<hex>.sig")
	fs.Float64Var(&c.Uploads, "uploads", c.Uploads, "share of repositories with an abandoned upload")
	fs.IntVar(&c.LayerBytes, "layer-bytes", c.LayerBytes, "random bytes actually stored per layer blob")
	fs.BoolVar(&c.TrueSizes, "true-sizes", c.TrueSizes, "record the stored size in layer descriptors instead of a realistic one")
	fs.IntVar(&c.Workers, "workers", c.Workers, "parallel writers (0: 4 per CPU)")
}

// FromArgs reads "-preset NAME" and the knob flags from args: the preset gives the
// defaults, explicit flags override them. Extra flags may be bound by extra.
func FromArgs(fs *flag.FlagSet, args []string, extra func(*flag.FlagSet)) (Config, error) {
	var scratch Config
	preset := fs.String("preset", "", "tree shape: "+strings.Join(PresetNames(), ", ")+" (flags override its knobs)")
	BindFlags(fs, &scratch)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := Presets["small"]
	if *preset != "" {
		p, ok := Presets[*preset]
		if !ok {
			return Config{}, fmt.Errorf("unknown preset %q (have %s)", *preset, strings.Join(PresetNames(), ", "))
		}
		cfg = p
	}
	overrides := flag.NewFlagSet("overrides", flag.ContinueOnError)
	BindFlags(overrides, &cfg)
	var err error
	fs.Visit(func(f *flag.Flag) {
		if overrides.Lookup(f.Name) != nil && err == nil {
			err = overrides.Set(f.Name, f.Value.String())
		}
	})
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// String is the knobs as flags, for reports and cache keys.
func (c Config) String() string {
	return fmt.Sprintf("-seed %d -repos %d -nested %g -manifests %d -layers %d -tags %d -multiarch-every %d -children %d "+
		"-overwritten %g -shared-share %g -shared-pool %d -oci-share %g -referrers %g -cosign %g -uploads %g -layer-bytes %d -true-sizes=%t",
		c.Seed, c.Repos, c.Nested, c.Manifests, c.Layers, c.Tags, c.MultiArchEvery, c.Children,
		c.Overwritten, c.SharedShare, c.SharedPool, c.OCIShare, c.Referrers, c.Cosign, c.Uploads, c.LayerBytes, c.TrueSizes)
}
