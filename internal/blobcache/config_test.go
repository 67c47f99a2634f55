package blobcache

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
)

// The official registry image's config.yml (registry:3, and the distribution
// module's Dockerfile alike): an in-memory cache.
const imageConfig = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
`

const noCache = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n"

func withCache(cache string) string {
	return "version: 0.1\nstorage:\n  filesystem: {}\n  cache:\n" + cache
}

var parseCases = []struct {
	name  string
	file  string
	env   []string
	kind  string
	redis *Redis // want, when kind is redis
	err   string // a substring of the error
}{
	// The file alone.
	{name: "official image: inmemory", file: imageConfig, kind: KindInMemory},
	{name: "no cache section", file: noCache, kind: KindNone},
	{name: "no storage section", file: "version: 0.1\nhttp:\n  addr: :5000\n", kind: KindNone},
	{name: "storage a driver's name", file: "version: 0.1\nstorage: inmemory\n", kind: KindNone},
	{name: "empty cache section", file: withCache("    blobdescriptorsize: 100\n"), kind: KindNone},
	{name: "null cache section", file: "version: 0.1\nstorage:\n  filesystem: {}\n  cache:\n", kind: KindNone},
	{name: "empty value", file: withCache("    blobdescriptor: \"\"\n"), kind: KindNone},
	{name: "null value", file: withCache("    blobdescriptor:\n"), kind: KindNone},
	{name: "unknown value", file: withCache("    blobdescriptor: memcached\n"), kind: KindNone},
	{name: "values are case-sensitive", file: withCache("    blobdescriptor: Redis\n"), kind: KindNone},
	{name: "not a string", file: withCache("    blobdescriptor: true\n"), kind: KindNone},
	{name: "quoted value", file: withCache("    blobdescriptor: 'inmemory'\n"), kind: KindInMemory},
	{name: "old key layerinfo", file: withCache("    layerinfo: inmemory\n"), kind: KindInMemory},
	{name: "blobdescriptor, even empty, hides layerinfo", file: withCache("    blobdescriptor:\n    layerinfo: inmemory\n"), kind: KindNone},
	{name: "v3 redis", kind: KindRedis,
		file:  withCache("    blobdescriptor: redis\n") + "redis:\n  addrs: [a:6379, b:6379]\n  db: 2\n  password: pw\n  username: u\n",
		redis: &Redis{Addrs: []string{"a:6379", "b:6379"}, DB: 2, Password: "pw", Username: "u"}},
	{name: "v3 redis, sentinel and TLS", kind: KindRedis,
		file:  withCache("    blobdescriptor: redis\n") + "redis:\n  addrs: [s1:26379, s2:26379]\n  mastername: mymaster\n  tls:\n    rootcas: [/ca.pem]\n",
		redis: &Redis{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", TLS: true}},
	{name: "v2 redis", kind: KindRedis,
		file:  withCache("    blobdescriptor: redis\n") + "redis:\n  addr: r:6379\n  db: 1\n  tls:\n    enabled: false\n  pool:\n    maxidle: 16\n",
		redis: &Redis{Addrs: []string{"r:6379"}, DB: 1}},
	{name: "v2 redis with TLS", kind: KindRedis,
		file:  withCache("    layerinfo: redis\n") + "redis:\n  addr: r:6379\n  tls:\n    enabled: true\n",
		redis: &Redis{Addrs: []string{"r:6379"}, TLS: true}},
	{name: "redis cache without redis section (the registry refuses to start)", kind: KindRedis,
		file: withCache("    blobdescriptor: redis\n"), redis: &Redis{}},
	{name: "redis section without redis cache", kind: KindInMemory,
		file: imageConfig + "redis:\n  addrs: [a:6379]\n"},

	// The environment.
	{name: "override to redis, with its address", file: imageConfig, kind: KindRedis,
		env:   []string{"PATH=/bin", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis", "REGISTRY_REDIS_ADDRS=[x:1]", "REGISTRY_REDIS_DB=3"},
		redis: &Redis{Addrs: []string{"x:1"}, DB: 3}},
	{name: "override to redis, v2 address", file: noCache, kind: KindRedis,
		env:   []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis", "REGISTRY_REDIS_ADDR=r:6379", "REGISTRY_REDIS_PASSWORD=secret"},
		redis: &Redis{Addrs: []string{"r:6379"}, Password: "secret"}},
	{name: "env redis settings over the file's", kind: KindRedis,
		file:  withCache("    blobdescriptor: redis\n") + "redis:\n  addrs: [a:6379]\n  db: 2\n",
		env:   []string{"REGISTRY_REDIS_ADDRS=[b:6379, c:6379]", "REGISTRY_REDIS_DB=0"},
		redis: &Redis{Addrs: []string{"b:6379", "c:6379"}}},
	{name: "override to inmemory", file: noCache, env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory"}, kind: KindInMemory},
	{name: "empty override: no cache", file: imageConfig, env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR="}, kind: KindNone},
	{name: "override without =: no cache", file: imageConfig, env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR"}, kind: KindNone},
	{name: "unknown override: no cache", file: imageConfig, env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=none"}, kind: KindNone},
	{name: "first entry of a name wins", file: noCache, kind: KindInMemory,
		env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis"}},
	{name: "layerinfo override", file: noCache, env: []string{"REGISTRY_STORAGE_CACHE_LAYERINFO=inmemory"}, kind: KindInMemory},
	{name: "layerinfo override under the file's blobdescriptor", file: imageConfig, kind: KindInMemory,
		env: []string{"REGISTRY_STORAGE_CACHE_LAYERINFO=redis"}},
	{name: "cache section override", file: imageConfig, env: []string{"REGISTRY_STORAGE_CACHE={}"}, kind: KindNone},
	{name: "cache section override with a cache", file: noCache, env: []string{"REGISTRY_STORAGE_CACHE={blobdescriptor: inmemory}"}, kind: KindInMemory},
	{name: "storage override drops the file's cache", file: imageConfig, env: []string{"REGISTRY_STORAGE=filesystem"}, kind: KindNone},
	{name: "storage override, then the cache, whatever the order given", file: imageConfig, kind: KindRedis,
		env:   []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis", "REGISTRY_REDIS_ADDRS=[r:1]", "REGISTRY_STORAGE=filesystem"},
		redis: &Redis{Addrs: []string{"r:1"}}},
	{name: "storage override as a mapping", file: noCache, kind: KindInMemory,
		env: []string{"REGISTRY_STORAGE={s3: {bucket: b}, cache: {layerinfo: inmemory}}"}},
	{name: "a mixed-case name makes a new cache section", file: imageConfig, kind: KindNone,
		env: []string{"REGISTRY_STORAGE_Cache_BLOBDESCRIPTORSIZE=10"}},
	{name: "a lower-case name is not the registry's", file: noCache, kind: KindNone,
		env: []string{"registry_storage_cache_blobdescriptor=inmemory", "REGISTRY_storage_cache_blobdescriptor=inmemory"}},
	{name: "a variable below the value makes it a mapping", file: noCache, kind: KindNone,
		env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR_X=1", "REGISTRY_STORAGE_CACHE_LAYERINFO=inmemory"}},
	{name: "a variable below a string is ignored", file: imageConfig, kind: KindInMemory,
		env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR_X=1"}},

	// Errors.
	{name: "invalid YAML", file: "::garbage", err: "yaml"},
	{name: "cache not a mapping", file: "version: 0.1\nstorage:\n  filesystem: {}\n  cache: inmemory\n", err: "storage"},
	{name: "cache override not a mapping", file: noCache, env: []string{"REGISTRY_STORAGE_CACHE=inmemory"}, err: "REGISTRY_STORAGE_CACHE"},
	{name: "storage override a list", file: noCache, env: []string{"REGISTRY_STORAGE=[filesystem]"}, err: "REGISTRY_STORAGE"},
	{name: "invalid YAML in an override", file: noCache, env: []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=[redis"}, err: "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR"},
	{name: "redis db not a number", file: withCache("    blobdescriptor: redis\n") + "redis:\n  addrs: [a:1]\n  db: one\n",
		kind: KindRedis, err: "redis db one"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			kind, r, err := Parse([]byte(tc.file), tc.env)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				if kind != tc.kind || r != nil {
					t.Fatalf("with the error: %q, %+v; want %q, nil", kind, r, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.kind || !reflect.DeepEqual(r, tc.redis) {
				t.Fatalf("got %q, %+v; want %q, %+v", kind, r, tc.kind, tc.redis)
			}
		})
	}
}

// TestParseAgainstUpstream: where the registry's own parser accepts a case's
// configuration and environment, the cache it leads handlers.NewApp to is Parse's;
// where Parse fails, the registry's parser does too.
func TestParseAgainstUpstream(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := upstreamParse(t, tc.file, tc.env)
			switch {
			case tc.err != "" && err == nil:
				t.Fatalf("Parse fails (%s), the registry's parser does not", tc.err)
			case tc.err != "":
				return
			case err != nil:
				t.Skipf("the registry does not take this configuration: %v", err)
			}
			// handlers.NewApp's choice, as in registry/handlers/app.go.
			v, ok := cfg.Storage["cache"]["blobdescriptor"]
			if !ok {
				v = cfg.Storage["cache"]["layerinfo"]
			}
			if want := KindOf(v); tc.kind != want {
				t.Fatalf("kind %q in the table, the registry's %q (%#v)", tc.kind, want, v)
			}
			if kind, _, _ := Parse([]byte(tc.file), tc.env); kind != tc.kind {
				t.Fatalf("Parse: %q, the registry's %q", kind, tc.kind)
			}
			if tc.kind == KindRedis && len(cfg.Redis.Options.Addrs) > 0 && !reflect.DeepEqual(tc.redis.Addrs, cfg.Redis.Options.Addrs) {
				t.Fatalf("redis addresses %q, the registry's %q", tc.redis.Addrs, cfg.Redis.Options.Addrs)
			}
		})
	}
}

// upstreamParse is the registry's configuration.Parse with exactly env's REGISTRY_*
// variables in the process environment (the first of a name), its panics errors.
func upstreamParse(t *testing.T, file string, env []string) (cfg *configuration.Configuration, err error) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "REGISTRY_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	seen := map[string]bool{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTRY_") && !seen[k] {
			seen[k] = true
			t.Setenv(k, v)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return configuration.Parse(strings.NewReader(file))
}

// TestParseIgnoresProcessEnvironment: only the given env counts.
func TestParseIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "redis")
	t.Setenv("REGISTRY_REDIS_ADDRS", "[p:1]")
	if kind, r, err := Parse([]byte(noCache), nil); kind != KindNone || r != nil || err != nil {
		t.Fatalf("got %q, %+v, %v: the process's environment leaked in", kind, r, err)
	}
	if kind, r, err := Parse([]byte(imageConfig), []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis"}); kind != KindRedis || err != nil || len(r.Addrs) != 0 {
		t.Fatalf("got %q, %+v, %v", kind, r, err)
	}
}

func TestKindOf(t *testing.T) {
	for v, want := range map[any]string{
		"redis": KindRedis, "inmemory": KindInMemory, nil: KindNone, "": KindNone, "Redis": KindNone,
		"in-memory": KindNone, "layerinfo": KindNone, true: KindNone, 1: KindNone,
	} {
		if got := KindOf(v); got != want {
			t.Errorf("KindOf(%#v) = %q, want %q", v, got, want)
		}
	}
	if KindOf(map[string]any{}) != KindNone || KindOf([]any{"redis"}) != KindNone {
		t.Error("a mapping or a list is no cache")
	}
}

func TestRedisSettings(t *testing.T) {
	v3 := []byte("version: 0.1\nredis:\n  addrs: [a:6379, b:6379]\n  db: 2\n  password: pw\n")
	s, err := ParseRedis(v3, nil)
	if err != nil || !reflect.DeepEqual(s.Addrs, []string{"a:6379", "b:6379"}) || s.DB != 2 || s.Password != "pw" {
		t.Fatalf("v3: %+v, %v", s, err)
	}
	v2 := []byte("version: 0.1\nredis:\n  addr: r:6379\n")
	s, err = ParseRedis(v2, []string{"REGISTRY_REDIS_DB=5", "REGISTRY_REDIS_PASSWORD=secret", "REGISTRY_REDIS_TLS_CERTIFICATE=/x"})
	if err != nil || !reflect.DeepEqual(s.Addrs, []string{"r:6379"}) || s.DB != 5 || s.Password != "secret" || s.TLS {
		t.Fatalf("v2 with overrides: %+v, %v", s, err)
	}
	s, err = ParseRedis([]byte("version: 0.1\n"), []string{"REGISTRY_REDIS_ADDRS=[x:1]"})
	if err != nil || !reflect.DeepEqual(s.Addrs, []string{"x:1"}) {
		t.Fatalf("env only: %+v, %v", s, err)
	}
	s, _ = ParseRedis([]byte("redis:\n  addrs: [x:1]\n  tls:\n    certificate: /c\n"), nil)
	if !s.TLS {
		t.Fatal("tls section not seen")
	}
}
