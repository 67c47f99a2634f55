package s3

import (
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]any
		want    Params
		wantErr string
	}{
		{
			name: "defaults",
			in:   map[string]any{"bucket": "b", "region": "eu-west-1"},
			want: Params{Bucket: "b", Region: "eu-west-1", Secure: true, V4Auth: true},
		},
		{
			name: "yaml booleans",
			in: map[string]any{"bucket": "b", "region": "us-east-1", "forcepathstyle": true,
				"secure": false, "skipverify": true, "usedualstack": true, "accelerate": true, "usefipsendpoint": true},
			want: Params{Bucket: "b", Region: "us-east-1", ForcePathStyle: true, SkipVerify: true,
				V4Auth: true, UseDualStack: true, Accelerate: true, UseFIPS: true},
		},
		{
			// REGISTRY_STORAGE_S3_* environment overrides arrive as strings.
			name: "string booleans",
			in: map[string]any{"bucket": "b", "regionendpoint": "http://127.0.0.1:9000",
				"forcepathstyle": "true", "secure": "false", "skipverify": "1", "v4auth": "TRUE"},
			want: Params{Bucket: "b", RegionEndpoint: "http://127.0.0.1:9000", ForcePathStyle: true,
				SkipVerify: true, V4Auth: true},
		},
		{
			name: "nil values take defaults",
			in:   map[string]any{"bucket": "b", "region": "us-east-1", "secure": nil, "rootdirectory": nil, "accesskey": nil},
			want: Params{Bucket: "b", Region: "us-east-1", Secure: true, V4Auth: true},
		},
		{
			name: "keys and root",
			in: map[string]any{"bucket": "b", "region": "us-east-1", "accesskey": "AK", "secretkey": "SK",
				"rootdirectory": "/reg/", "useragent": "me", "chunksize": 10485760, "encrypt": true},
			want: Params{Bucket: "b", Region: "us-east-1", Secure: true, V4Auth: true, AccessKey: "AK",
				SecretKey: "SK", RootDirectory: "/reg/", UserAgent: "me"},
		},
		{
			name: "non-string values formatted",
			in:   map[string]any{"bucket": 123, "region": "us-east-1"},
			want: Params{Bucket: "123", Region: "us-east-1", Secure: true, V4Auth: true},
		},
		{name: "no bucket", in: map[string]any{"region": "us-east-1"}, wantErr: "no bucket"},
		{name: "empty bucket", in: map[string]any{"bucket": "", "region": "us-east-1"}, wantErr: "no bucket"},
		{name: "no region nor endpoint", in: map[string]any{"bucket": "b"}, wantErr: "no region"},
		{name: "bad bool string", in: map[string]any{"bucket": "b", "region": "r", "secure": "maybe"}, wantErr: "secure parameter should be a boolean"},
		{name: "bad bool type", in: map[string]any{"bucket": "b", "region": "r", "forcepathstyle": 1}, wantErr: "forcepathstyle parameter should be a boolean"},
		{name: "v2 auth", in: map[string]any{"bucket": "b", "region": "r", "v4auth": false}, wantErr: "signature version 2"},
		{name: "bad endpoint", in: map[string]any{"bucket": "b", "regionendpoint": "http://"}, wantErr: "invalid regionendpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		p    Params
		want string
	}{
		{Params{Region: "us-east-1", Secure: true}, ""},
		{Params{Region: "eu-west-1", Secure: false}, "http://s3.eu-west-1.amazonaws.com"},
		{Params{Region: "cn-north-1", Secure: false}, "http://s3.cn-north-1.amazonaws.com.cn"},
		{Params{RegionEndpoint: "minio:9000", Secure: true}, "https://minio:9000"},
		{Params{RegionEndpoint: "minio:9000", Secure: false}, "http://minio:9000"},
		// A scheme given wins over secure, as in the registry's driver.
		{Params{RegionEndpoint: "http://127.0.0.1:7070", Secure: true}, "http://127.0.0.1:7070"},
		{Params{RegionEndpoint: "https://s3.example.com", Secure: false}, "https://s3.example.com"},
	}
	for _, tt := range tests {
		got, err := tt.p.Endpoint()
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.p, got, err, tt.want)
		}
	}
}

func TestSigningRegion(t *testing.T) {
	if got := (Params{}).SigningRegion(); got != DefaultRegion {
		t.Errorf("empty region signs for %q", got)
	}
	if got := (Params{Region: "eu-central-1"}).SigningRegion(); got != "eu-central-1" {
		t.Errorf("got %q", got)
	}
}

// The registry forms keys as strings.TrimLeft(strings.TrimRight(root, "/")+"/"+path, "/").
func TestKeys(t *testing.T) {
	const p = "docker/registry/v2/blobs/sha256/ab/abcd/data"
	tests := []struct {
		root, key string
	}{
		{"", p},
		{"/", p},
		{"//", p},
		{"reg", "reg/" + p},
		{"/reg", "reg/" + p},
		{"/reg/", "reg/" + p},
		{"/a/b//", "a/b/" + p},
		{"a//b", "a//b/" + p},
	}
	for _, tt := range tests {
		prefix := Params{RootDirectory: tt.root}.Prefix()
		registry := strings.TrimLeft(strings.TrimRight(tt.root, "/")+"/"+p, "/")
		if got := keyOf(prefix, p); got != tt.key || got != registry {
			t.Errorf("root %q: key %q, want %q (registry: %q)", tt.root, got, tt.key, registry)
		}
		back, ok := pathOf(prefix, tt.key)
		if !ok || back != p {
			t.Errorf("root %q: path of %q = %q, %v", tt.root, tt.key, back, ok)
		}
	}
	if _, ok := pathOf("reg", "other/x"); ok {
		t.Error("a key outside the root mapped to a path")
	}
	if _, ok := pathOf("reg", "regx/y"); ok {
		t.Error("a sibling prefix mapped to a path")
	}
}

func TestDirPrefix(t *testing.T) {
	tests := []struct{ prefix, dir, want string }{
		{"", "", ""},
		{"", "docker/registry/v2", "docker/registry/v2/"},
		{"", "docker/registry/v2/", "docker/registry/v2/"},
		{"reg", "", "reg/"},
		{"reg", "docker/registry/v2/blobs", "reg/docker/registry/v2/blobs/"},
	}
	for _, tt := range tests {
		if got := dirPrefix(tt.prefix, tt.dir); got != tt.want {
			t.Errorf("dirPrefix(%q, %q) = %q, want %q", tt.prefix, tt.dir, got, tt.want)
		}
	}
}

func TestBatchSize(t *testing.T) {
	for _, tt := range []struct{ n, jobs, want int }{
		{1, 16, 100},
		{1000, 16, 100},
		{1000, 4, 250},
		{5000, 4, 1000},
		{16000, 16, 1000},
		{3000, 1, 1000},
	} {
		if got := batchSize(tt.n, tt.jobs); got != tt.want {
			t.Errorf("batchSize(%d, %d) = %d, want %d", tt.n, tt.jobs, got, tt.want)
		}
	}
}
