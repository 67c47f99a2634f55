// Package harness runs the real upstream distribution registry for tests and
// benchmarks, pushes images to it with go-containerregistry, pulls them back with
// every digest verified, and damages its filesystem storage on purpose.
//
// Core functions take a context and return errors, so that a benchmark program can
// use them too; Session wraps them for tests, failing the test on error.
//
// The storage paths written here are derived from upstream's registry/storage/paths.go
// independently of internal/layout, so that the tests do not trust the code they test.
package harness
