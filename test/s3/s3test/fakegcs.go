package s3test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// FakeGCSModule and FakeGCSVersion pin the Google Cloud Storage emulator
// (fsouza/fake-gcs-server, BSD-2-Clause) the gcs tests run against.
const (
	FakeGCSModule  = "github.com/fsouza/fake-gcs-server"
	FakeGCSVersion = "v1.56.1"
)

// FakeGCSBinaryPath is where the emulator lives once built.
func FakeGCSBinaryPath() string {
	return filepath.Join(CacheDir(), "fake-gcs-server-"+FakeGCSVersion, "fake-gcs-server")
}

var fakeGCSBuildMu sync.Mutex

// FakeGCSBinary returns the emulator binary, building it from the module proxy when
// the cache does not hold it yet.
func FakeGCSBinary() (string, error) {
	fakeGCSBuildMu.Lock()
	defer fakeGCSBuildMu.Unlock()
	return goInstall(FakeGCSBinaryPath(), FakeGCSModule+"@"+FakeGCSVersion)
}

// goInstall builds pkg@version into bin unless it is there already: into a private
// directory, then renamed, so no one ever runs a half-written binary.
func goInstall(bin, pkgAtVersion string) (string, error) {
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(bin), ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", pkgAtVersion)
	cmd.Dir = tmp // outside any module: the project's go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkgAtVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(bin)), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// FakeGCS is a running GCS emulator. Its buckets start as the directories of the data
// directory it was given (one directory a bucket, files below it objects) and live in
// memory: the data directory is never written.
type FakeGCS struct {
	Host string // 127.0.0.1:PORT, for STORAGE_EMULATOR_HOST
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// StartFakeGCS runs the emulator over HTTP on a free loopback port, with the buckets
// found in dataDir. workDir receives its log.
func StartFakeGCS(dataDir, workDir string) (*FakeGCS, error) {
	bin, err := FakeGCSBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		logFile, err := os.Create(filepath.Join(workDir, "fake-gcs-server.log"))
		if err != nil {
			return nil, err
		}
		host := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "-scheme", "http", "-host", "127.0.0.1", "-port", fmt.Sprint(port),
			"-backend", "memory", "-data", dataDir, "-log-level", "error",
			"-public-host", host, "-external-url", "http://"+host)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		setDeathSignal(cmd)
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return nil, err
		}
		f := &FakeGCS{Host: host, cmd: cmd, done: make(chan struct{}), log: logFile}
		go func() { cmd.Wait(); close(f.done) }()
		if lastErr = f.waitReady(); lastErr == nil {
			return f, nil
		}
		f.Close()
		data, _ := os.ReadFile(logFile.Name())
		lastErr = fmt.Errorf("fake-gcs-server on %s: %w\n%s", host, lastErr, data)
	}
	return nil, lastErr
}

func (f *FakeGCS) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-f.done:
			return errors.New("exited at start")
		default:
		}
		resp, err := client.Get("http://" + f.Host + "/storage/v1/b")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not answering after 60s")
}

// Close stops the emulator.
func (f *FakeGCS) Close() {
	f.cmd.Process.Kill()
	<-f.done
	f.log.Close()
}

// WriteServiceAccountKey writes a syntactically valid service-account key file with
// a fresh RSA key: the registry's gcs driver wants credentials even when the storage
// client talks to an emulator, which ignores them.
func WriteServiceAccountKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "clean-registry-test",
		"private_key_id": "test",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "test@clean-registry-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      "http://127.0.0.1:1/token",
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
