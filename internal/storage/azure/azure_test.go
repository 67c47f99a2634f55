package azure

import (
	"context"
	"net"
	"strings"
	"testing"
)

// No Azure Blob server can be run here: these check what needs none, the driver's
// parameter errors and the constructor's check failing before anything is deleted.
func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, map[string]any{"container": "c"}, 2); err == nil || !strings.Contains(err.Error(), "accountname") {
		t.Errorf("missing accountname: %v", err)
	}
	// A closed loopback port: the listing of the container fails, with the name shown.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = New(ctx, map[string]any{
		"accountname": "acct", "accountkey": "a2V5", "container": "reg", "rootdirectory": "/r/",
		"serviceurl": "http://" + addr + "/acct", "credentials": map[string]any{"type": "shared_key"},
		"max_retries": 1, "retry_delay": "1ms",
	}, 2)
	if err == nil || !strings.Contains(err.Error(), "azure://acct/reg/r: cannot list the container") {
		t.Errorf("unreachable service: %v", err)
	}
}
