package regconfig

import (
	"testing"
)

const base = `version: 0.1
storage:
  filesystem:
    rootdirectory: /data/registry
  cache:
    blobdescriptor: inmemory
  maintenance:
    readonly:
      enabled: true
http:
  addr: :5000
`

func TestParse(t *testing.T) {
	s, err := Parse([]byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver != "filesystem" || s.RootDirectory() != "/data/registry" || !s.ReadOnly || s.BlobDescriptorCache != "inmemory" {
		t.Fatalf("got %+v", s)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/from/this/process")
	s, err := Parse([]byte(base), []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/from/env", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.RootDirectory() != "/from/env" {
		t.Fatalf("root = %s, want the given environment's", s.RootDirectory())
	}
	s, err = Parse([]byte(base), nil)
	if err != nil || s.RootDirectory() != "/data/registry" {
		t.Fatalf("root = %s, %v: the process's own REGISTRY_* must not leak in", s.RootDirectory(), err)
	}
}

func TestDefaultsAndOtherDrivers(t *testing.T) {
	s, err := Parse([]byte("version: 0.1\nstorage:\n  filesystem: {}\n"), nil)
	if err != nil || s.RootDirectory() != DefaultRootDirectory || s.ReadOnly || s.BlobDescriptorCache != "" {
		t.Fatalf("got %+v, %v", s, err)
	}
	s, err = Parse([]byte("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    region: us-east-1\n"), nil)
	if err != nil || s.Driver != "s3" || s.Parameters["bucket"] != "b" {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := Parse([]byte("version: 0.1\nstorage: {}\n"), nil); err == nil {
		t.Fatal("a config without a storage driver must be an error")
	}
	if _, err := Parse([]byte("::garbage"), nil); err == nil {
		t.Fatal("garbage must be an error")
	}
}
