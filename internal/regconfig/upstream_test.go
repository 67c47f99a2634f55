package regconfig

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
)

// The configuration of the official registry image, and a fuller one.
const (
	fsFile = `version: 0.1
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
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`
	s3File = `version: 0.1
loglevel: warn
storage:
  s3:
    region: us-east-1
    bucket: registry
    secure: true
    chunksize: 5242880
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: false
  delete:
    enabled: true
redis:
  addrs: [redis:6379]
  db: 1
middleware:
  registry:
    - name: foo
      options:
        a: 1
notifications:
  endpoints:
    - name: alistener
      url: https://listener.example/
      timeout: 1s
http:
  addr: :5000
`
	noStorageFile = "version: 0.1\nhttp:\n  addr: :5000\n"
)

// upstreamParse is the registry's own configuration.Parse run with exactly env's
// REGISTRY_* variables in the process environment (the first entry of a name,
// as a Go process sees it), and with its panics as errors.
func upstreamParse(t *testing.T, data []byte, env []string) (cfg *configuration.Configuration, panicked bool, err error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, envPrefix) {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	seen := map[string]bool{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) && !seen[k] {
			seen[k] = true
			t.Setenv(k, v)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			cfg, panicked, err = nil, true, fmt.Errorf("panic: %v", r)
		}
	}()
	cfg, err = configuration.Parse(bytes.NewReader(data))
	return cfg, false, err
}

// compareWithUpstream checks that parseConfig and Parse give what the registry's
// own parser gives: the same whole configuration, or the same error (any error
// where the registry panics).
func compareWithUpstream(t *testing.T, data string, env []string) (*Storage, error) {
	t.Helper()
	want, panicked, wantErr := upstreamParse(t, []byte(data), env)
	got, gotErr := parseConfig([]byte(data), env)
	st, stErr := Parse([]byte(data), env)
	switch {
	case wantErr != nil:
		if gotErr == nil || stErr == nil {
			t.Fatalf("upstream fails (%v), we do not: %+v", wantErr, st)
		}
		if !panicked && sameError(gotErr.Error()) != sameError(wantErr.Error()) {
			t.Fatalf("error %q, upstream's %q", gotErr, wantErr)
		}
	case gotErr != nil || stErr != nil:
		t.Fatalf("we fail (%v, %v), upstream does not: %#v", gotErr, stErr, want)
	default:
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("configuration differs from upstream's:\n got %#v\nwant %#v", got, want)
		}
		// Redis is read from the file and env (blobcache.ParseRedis), not from
		// the configuration.
		withoutRedis := *st
		withoutRedis.Redis = nil
		if ws := storageOf(want); !reflect.DeepEqual(&withoutRedis, ws) {
			t.Fatalf("storage %+v, from upstream's configuration %+v", st, ws)
		}
		if (st.BlobDescriptorCache == blobcache.KindRedis) != (st.Redis != nil) {
			t.Fatalf("cache %q with redis settings %+v", st.BlobDescriptorCache, st.Redis)
		}
		// blobcache.Parse, from the file and env alone, finds the same cache.
		if kind, r, err := blobcache.Parse([]byte(data), env); err != nil || kind != st.BlobDescriptorCache || !reflect.DeepEqual(r, st.Redis) {
			t.Fatalf("blobcache.Parse: %q, %+v, %v; the registry's configuration: %q, %+v", kind, r, err, st.BlobDescriptorCache, st.Redis)
		}
	}
	return st, stErr
}

// sameError drops the list of drivers of upstream's "must provide exactly one
// storage type. Provided: [s3 gcs]", in map order.
func sameError(msg string) string {
	before, _, _ := strings.Cut(msg, "Provided: [")
	return before
}

type want struct {
	err      string // a substring of the error, when there is one
	driver   string
	root     string // filesystem only
	readOnly bool
	cache    string
	params   map[string]any // some parameters
}

var upstreamCases = []struct {
	name string
	file string
	env  []string
	want want
}{
	{name: "plain filesystem file", file: fsFile,
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "plain s3 file", file: s3File,
		want: want{driver: "s3", params: map[string]any{"region": "us-east-1", "bucket": "registry", "secure": true, "chunksize": 5242880}}},
	{name: "rootdirectory", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data", "PATH=/usr/bin", "HOME=/root"},
		want: want{driver: "filesystem", root: "/data", cache: "inmemory"}},
	{name: "rootdirectory without any storage file", file: "version: 0.1\nstorage:\n  filesystem: {}\n",
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/registry"},
		want: want{driver: "filesystem", root: "/srv/registry"}},
	{name: "numeric rootdirectory", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=123"},
		want: want{driver: "filesystem", root: "123", cache: "inmemory", params: map[string]any{"rootdirectory": 123}}},
	{name: "empty rootdirectory is a nil parameter", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="},
		want: want{driver: "filesystem", root: "<nil>", cache: "inmemory", params: map[string]any{"rootdirectory": nil}}},
	{name: "entry without =", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"},
		want: want{driver: "filesystem", root: "<nil>", cache: "inmemory"}},
	{name: "first entry of a name wins", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/first", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/second"},
		want: want{driver: "filesystem", root: "/first", cache: "inmemory"}},
	{name: "maxthreads", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS=50"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory", params: map[string]any{"maxthreads": 50}}},
	{name: "s3 region", file: s3File,
		env:  []string{"REGISTRY_STORAGE_S3_REGION=eu-west-1"},
		want: want{driver: "s3", params: map[string]any{"region": "eu-west-1", "bucket": "registry"}}},
	{name: "s3 keys, YAML-typed", file: s3File,
		env: []string{
			"REGISTRY_STORAGE_S3_BUCKET=other",
			"REGISTRY_STORAGE_S3_REGIONENDPOINT=http://minio:9000",
			"REGISTRY_STORAGE_S3_SECURE=false",
			"REGISTRY_STORAGE_S3_V4AUTH=yes",
			"REGISTRY_STORAGE_S3_CHUNKSIZE=10485760",
			"REGISTRY_STORAGE_S3_MULTIPARTCOPYTHRESHOLDSIZE=0x10",
			"REGISTRY_STORAGE_S3_ACCESSKEY=AKIAEXAMPLE",
			"REGISTRY_STORAGE_S3_SECRETKEY=s3cr3t #not a comment for a shell",
			"REGISTRY_STORAGE_S3_ROOTDIRECTORY='/quoted'",
			"REGISTRY_STORAGE_S3_ENCRYPT=null",
			"REGISTRY_STORAGE_S3_SKIPVERIFY=1.5",
		},
		want: want{driver: "s3", params: map[string]any{
			"bucket": "other", "regionendpoint": "http://minio:9000", "secure": false, "v4auth": true,
			"chunksize": 10485760, "multipartcopythresholdsize": 16, "accesskey": "AKIAEXAMPLE",
			"secretkey": "s3cr3t", "rootdirectory": "/quoted", "encrypt": nil, "skipverify": 1.5,
		}}},
	{name: "whole s3 section", file: s3File,
		env:  []string{"REGISTRY_STORAGE_S3={region: ap-south-1, bucket: b2}"},
		want: want{driver: "s3", params: map[string]any{"region": "ap-south-1", "bucket": "b2"}}},
	{name: "mixed-case key is created lower-cased", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_RootDirectory=/mixed"},
		want: want{driver: "filesystem", root: "/mixed", cache: "inmemory"}},
	{name: "lower-case field is ignored", file: fsFile,
		env:  []string{"REGISTRY_storage_filesystem_rootdirectory=/x", "registry_storage_filesystem_rootdirectory=/y"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "storage=filesystem replaces the section", file: s3File,
		env:  []string{"REGISTRY_STORAGE=filesystem"},
		want: want{driver: "filesystem", root: DefaultRootDirectory}},
	{name: "storage=inmemory", file: fsFile,
		env:  []string{"REGISTRY_STORAGE=inmemory"},
		want: want{driver: "inmemory"}},
	{name: "storage=filesystem then rootdirectory, whatever the order given", file: s3File,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis", "REGISTRY_STORAGE=filesystem"},
		want: want{driver: "filesystem", root: "/srv", cache: "redis"}},
	{name: "storage as a mapping", file: fsFile,
		env:  []string{"REGISTRY_STORAGE={gcs: {bucket: g}, maintenance: {readonly: {enabled: true}}}"},
		want: want{driver: "gcs", readOnly: true, params: map[string]any{"bucket": "g"}}},
	{name: "storage gives a configuration its storage", file: noStorageFile,
		env:  []string{"REGISTRY_STORAGE=inmemory"},
		want: want{driver: "inmemory"}},
	{name: "no storage", file: noStorageFile,
		want: want{err: "no storage configuration provided"}},
	{name: "readonly.enabled over the file's readonly is ignored by the registry", file: s3File,
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true"},
		want: want{driver: "s3"}},
	{name: "readonly.enabled without readonly in the file is not a mapping the registry takes", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "readonly as a mapping", file: s3File,
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY={enabled: true}"},
		want: want{driver: "s3", readOnly: true}},
	{name: "maintenance as a mapping", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE={readonly: {enabled: true}}"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory", readOnly: true}},
	{name: "readonly enabled not a boolean", file: s3File,
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY={enabled: 'true'}"},
		want: want{driver: "s3"}},
	{name: "blobdescriptor redis", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "redis"}},
	{name: "blobdescriptor redis, no cache in the file", file: s3File,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis"},
		want: want{driver: "s3", cache: "redis"}},
	{name: "layerinfo", file: s3File,
		env:  []string{"REGISTRY_STORAGE_CACHE_LAYERINFO=inmemory"},
		want: want{driver: "s3", cache: "inmemory"}},
	{name: "cache section", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE={}"},
		want: want{driver: "filesystem", root: "/var/lib/registry"}},
	{name: "cache section null", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE=null"},
		want: want{driver: "filesystem", root: "/var/lib/registry"}},
	{name: "cache section with layerinfo", file: s3File,
		env:  []string{"REGISTRY_STORAGE_CACHE={layerinfo: redis}"},
		want: want{driver: "s3", cache: "redis"}},
	{name: "empty blobdescriptor: no cache", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR="},
		want: want{driver: "filesystem", root: "/var/lib/registry"}},
	{name: "empty blobdescriptor hides layerinfo", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=", "REGISTRY_STORAGE_CACHE_LAYERINFO=inmemory"},
		want: want{driver: "filesystem", root: "/var/lib/registry"}},
	{name: "unknown blobdescriptor: no cache", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=Redis"},
		want: want{driver: "filesystem", root: "/var/lib/registry"}},
	{name: "quoted blobdescriptor", file: s3File,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR='redis'"},
		want: want{driver: "s3", cache: "redis"}},
	{name: "blobdescriptor a mapping", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR_X=1"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "blobdescriptor a mapping, not a string", file: s3File,
		env:  []string{"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR_X=1", "REGISTRY_STORAGE_CACHE_LAYERINFO=redis"},
		want: want{driver: "s3"}},
	{name: "mixed-case cache replaces the cache section", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_Cache_LAYERINFO=redis"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "redis"}},
	{name: "delete, redirect and tag are not drivers", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_DELETE_ENABLED=true", "REGISTRY_STORAGE_REDIRECT_DISABLE=true", "REGISTRY_STORAGE_TAG_CONCURRENCYLIMIT=8"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "a second driver (s3 on filesystem)", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_S3_REGION=us-east-1"},
		want: want{err: "multiple storage drivers"}},
	{name: "a second driver (gcs on s3)", file: s3File,
		env:  []string{"REGISTRY_STORAGE_GCS_BUCKET=b"},
		want: want{err: "multiple storage drivers"}},
	{name: "an empty driver name", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_={}"},
		want: want{err: "multiple storage drivers"}},
	{name: "two drivers in a mapping", file: fsFile,
		env:  []string{"REGISTRY_STORAGE={s3: {}, gcs: {}}"},
		want: want{err: "exactly one storage type"}},
	{name: "unrelated http addr", file: fsFile,
		env:  []string{"REGISTRY_HTTP_ADDR=:5001", "REGISTRY_HTTP_SECRET=xyz", "REGISTRY_HTTP_TLS_CERTIFICATE=/c.pem"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "unrecognized variables", file: fsFile,
		env:  []string{"REGISTRY_", "REGISTRY__STORAGE=x", "REGISTRY_NOSUCH=1", "REGISTRY_HTTP_ADDR_PORT=1", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY_X=/y"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "other sections", file: s3File,
		env: []string{
			"REGISTRY_LOG_LEVEL=DEBUG", "REGISTRY_LOG_FIELDS_ENV=prod", "REGISTRY_LOGLEVEL=error",
			"REGISTRY_AUTH_HTPASSWD_REALM=basic", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
			"REGISTRY_REDIS_ADDRS=[a:6379, b:6379]", "REGISTRY_REDIS_DB=2", "REGISTRY_REDIS_TLS_CERTIFICATE=/c", "REGISTRY_REDIS_MASTERNAME=m",
			"REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io", "REGISTRY_PROXY_TTL=24h", "REGISTRY_PROXY_EXEC_COMMAND=helper",
			"REGISTRY_CATALOG_MAXENTRIES=5", "REGISTRY_TAGS_MAXTAGS=7",
			"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=https://other/", "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME=second",
			"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS_AUTHORIZATION=[Bearer x]",
			"REGISTRY_MIDDLEWARE_REGISTRY_0_NAME=bar", "REGISTRY_MIDDLEWARE_STORAGE_0_NAME=cloudfront",
			"REGISTRY_MIDDLEWARE_STORAGE_0_OPTIONS_BASEURL=https://cdn/",
			"REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW=['^https?://']", "REGISTRY_HEALTH_STORAGEDRIVER_ENABLED=false",
		},
		want: want{driver: "s3"}},
	{name: "notifications on an empty list", file: fsFile,
		env:  []string{"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME=a", "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=https://a/"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "version", file: fsFile,
		env:  []string{"REGISTRY_VERSION=0.2"},
		want: want{driver: "filesystem", root: "/var/lib/registry", cache: "inmemory"}},
	{name: "invalid YAML in a storage parameter", file: s3File,
		env:  []string{"REGISTRY_STORAGE_S3_REGION=[unclosed"},
		want: want{err: "REGISTRY_STORAGE_S3_REGION"}},
	{name: "invalid YAML in http addr", file: fsFile,
		env:  []string{"REGISTRY_HTTP_ADDR={"},
		want: want{err: "REGISTRY_HTTP_ADDR"}},
	{name: "mapping for a string", file: fsFile,
		env:  []string{"REGISTRY_HTTP_ADDR={a: b}"},
		want: want{err: "REGISTRY_HTTP_ADDR"}},
	{name: "word for a number", file: fsFile,
		env:  []string{"REGISTRY_CATALOG_MAXENTRIES=many"},
		want: want{err: "REGISTRY_CATALOG_MAXENTRIES"}},
	{name: "string for a list", file: s3File,
		env:  []string{"REGISTRY_REDIS_ADDRS=a:6379"},
		want: want{err: "REGISTRY_REDIS_ADDRS"}},
	{name: "invalid log level", file: fsFile,
		env:  []string{"REGISTRY_LOG_LEVEL=verbose"},
		want: want{err: "invalid loglevel"}},
	{name: "storage a list", file: fsFile,
		env:  []string{"REGISTRY_STORAGE=[filesystem]"},
		want: want{err: "REGISTRY_STORAGE"}},
	{name: "driver section a scalar", file: fsFile,
		env:  []string{"REGISTRY_STORAGE_FILESYSTEM=/data"},
		want: want{err: "REGISTRY_STORAGE_FILESYSTEM"}},
	{name: "negative maxtags", file: fsFile,
		env:  []string{"REGISTRY_TAGS_MAXTAGS=-1"},
		want: want{err: "maxtags"}},
	{name: "undefined index", file: s3File,
		env:  []string{"REGISTRY_NOTIFICATIONS_ENDPOINTS_5_NAME=x"},
		want: want{err: "undefined index"}},
	{name: "non-numeric index", file: s3File,
		env:  []string{"REGISTRY_NOTIFICATIONS_ENDPOINTS_X_NAME=x"},
		want: want{err: "non-numeric index"}},
	{name: "a struct element set whole (the registry panics)", file: s3File,
		env:  []string{"REGISTRY_NOTIFICATIONS_ENDPOINTS_0=x"},
		want: want{err: "would fail"}},
	{name: "appending to a list in a map (the registry panics)", file: s3File,
		env:  []string{"REGISTRY_MIDDLEWARE_REGISTRY_1_NAME=x"},
		want: want{err: "would fail"}},
	{name: "unsupported version", file: "version: 0.2\nstorage: inmemory\n",
		want: want{err: "unsupported version"}},
	{name: "invalid file", file: "::garbage",
		want: want{err: "yaml"}},
}

func TestAgainstUpstream(t *testing.T) {
	for _, tc := range upstreamCases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := compareWithUpstream(t, tc.file, tc.env)
			w := tc.want
			if w.err != "" {
				if err == nil || !strings.Contains(err.Error(), w.err) {
					t.Fatalf("error %v, want one with %q", err, w.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Driver != w.driver || st.ReadOnly != w.readOnly || st.BlobDescriptorCache != w.cache {
				t.Fatalf("got %+v, want %+v", st, w)
			}
			if w.driver == "filesystem" && st.RootDirectory() != w.root {
				t.Fatalf("root %q, want %q", st.RootDirectory(), w.root)
			}
			for k, v := range w.params {
				if got, ok := st.Parameters[k]; !ok || !reflect.DeepEqual(got, v) {
					t.Fatalf("parameter %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
				}
			}
		})
	}
}

// TestRandomAgainstUpstream compares random mixes of overrides, in random order.
func TestRandomAgainstUpstream(t *testing.T) {
	var pool []string
	for _, tc := range upstreamCases {
		pool = append(pool, tc.env...)
	}
	pool = append(pool,
		"REGISTRY_STORAGE=s3", "REGISTRY_STORAGE=filesystem", "REGISTRY_STORAGE_S3_BUCKET=x",
		"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED=true", "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=false",
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTORSIZE=100", "REGISTRY_AUTH=htpasswd", "REGISTRY_REDIS={addrs: [r:1]}",
		"REGISTRY_MIDDLEWARE={}", "REGISTRY_NOTIFICATIONS_ENDPOINTS=[]", "REGISTRY_LOG_FIELDS={a: 1}",
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=x",
		"REGISTRY_STORAGE_CACHE_LAYERINFO=redis", "REGISTRY_STORAGE_CACHE={blobdescriptor: redis}", "REGISTRY_STORAGE_CACHE=",
		"REGISTRY_STORAGE_Cache_BLOBDESCRIPTOR=redis", "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR_A=1", "REGISTRY_STORAGE_CACHE_LAYERINFO_A=1",
		"REGISTRY_STORAGE={filesystem: {}, cache: {layerinfo: inmemory}}", "REGISTRY_STORAGE=", "REGISTRY_STORAGE_CACHE_=x",
	)
	files := []string{fsFile, s3File, noStorageFile, "version: 0.1\nstorage: inmemory\n",
		"version: 0.1\nstorage:\n  filesystem: {}\n  cache:\n    layerinfo: redis\nredis:\n  addrs: [r:6379]\n",
		"version: 0.1\nstorage:\n  inmemory:\n  cache:\n"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1500 {
		file := files[rng.IntN(len(files))]
		env := make([]string, rng.IntN(5))
		for j := range env {
			env[j] = pool[rng.IntN(len(pool))]
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Logf("file %q, env %q", file, env)
			compareWithUpstream(t, file, env)
		})
	}
}

// FuzzAgainstUpstream compares any overrides (one NAME=value a line).
func FuzzAgainstUpstream(f *testing.F) {
	for _, tc := range upstreamCases {
		f.Add(uint8(0), strings.Join(tc.env, "\n"))
		f.Add(uint8(1), strings.Join(tc.env, "\n"))
	}
	files := []string{fsFile, s3File, noStorageFile}
	f.Fuzz(func(t *testing.T, file uint8, lines string) {
		if strings.ContainsRune(lines, 0) || strings.Contains(strings.ToLower(lines), "nan") {
			t.Skip() // no NUL in an environment; NaN is never DeepEqual
		}
		var env []string
		for _, kv := range strings.Split(lines, "\n") {
			if k, _, _ := strings.Cut(kv, "="); k != "" {
				env = append(env, kv)
			}
		}
		compareWithUpstream(t, files[int(file)%len(files)], env)
	})
}

// TestProcessEnvironmentIgnored: this process's REGISTRY_* variables play no part.
func TestProcessEnvironmentIgnored(t *testing.T) {
	for _, kv := range []string{
		"REGISTRY_STORAGE=inmemory",
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/from/this/process",
		"REGISTRY_STORAGE_S3_REGION=us-east-1",
		"REGISTRY_STORAGE_MAINTENANCE_READONLY={enabled: true}",
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis",
		"REGISTRY_LOG_LEVEL=nonsense",
	} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		env  []string
		want Storage
	}{
		{nil, Storage{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": "/var/lib/registry"}, BlobDescriptorCache: "inmemory"}},
		{os.Environ()[:0], Storage{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": "/var/lib/registry"}, BlobDescriptorCache: "inmemory"}},
		{[]string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/from/env"},
			Storage{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": "/from/env"}, BlobDescriptorCache: "inmemory"}},
	} {
		got, err := Parse([]byte(fsFile), tc.env)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Fatalf("env %q: got %+v, want %+v", tc.env, got, tc.want)
		}
	}
	// With them in env, they count (and fail: s3 on filesystem).
	if _, err := Parse([]byte(fsFile), os.Environ()); err == nil {
		t.Fatal("the process's variables passed as env must apply")
	}
}

// TestProcessEnvironmentUntouched: parsing, concurrently, never changes the
// process environment, not even for a moment.
func TestProcessEnvironmentUntouched(t *testing.T) {
	before := os.Environ()
	env := []string{
		"REGISTRY_STORAGE=filesystem",
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/from/env",
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis",
	}
	stop := make(chan struct{})
	seen := make(chan string, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, kv := range os.Environ() {
				if strings.HasPrefix(kv, envPrefix) && slices.Contains(env, kv) {
					seen <- kv
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				s, err := Parse([]byte(s3File), env)
				if err != nil || s.RootDirectory() != "/from/env" || s.BlobDescriptorCache != "redis" {
					t.Errorf("got %+v, %v", s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if kv, ok := <-seen; ok {
		t.Fatalf("%s showed in the process environment", kv)
	}
	after := os.Environ()
	slices.Sort(before)
	slices.Sort(after)
	if !slices.Equal(before, after) {
		t.Fatal("the process environment changed")
	}
}
