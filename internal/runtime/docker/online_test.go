package docker

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

func TestEndpoints(t *testing.T) {
	settings := &container.NetworkSettings{
		Networks: map[string]*network.EndpointSettings{"bridge": {IPAddress: "172.17.0.5"}},
	}
	// Set through the promoted field: the embedding struct's name is deprecated.
	settings.Ports = nat.PortMap{
		"5000/tcp": {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}, {HostIP: "10.1.2.3", HostPort: "9090"}},
	}
	ins := container.InspectResponse{
		Config:          &container.Config{ExposedPorts: nat.PortSet{"5000/tcp": {}, "5001/tcp": {}, "53/udp": {}}},
		NetworkSettings: settings,
	}
	want := []endpoint{
		{"5000/tcp", "127.0.0.1:8080"}, {"5000/tcp", "[::1]:8080"}, {"5000/tcp", "10.1.2.3:9090"}, {"5000/tcp", "172.17.0.5:5000"},
		{"5001/tcp", "172.17.0.5:5001"},
	}
	if got := endpoints(ins, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %v, want %v", got, want)
	}
	if got := endpoints(ins, map[string]bool{"5001/tcp": true}); !reflect.DeepEqual(got, want[4:]) {
		t.Errorf("endpoints of 5001/tcp = %v, want %v", got, want[4:])
	}
	if got := endpoints(container.InspectResponse{}, nil); got != nil {
		t.Errorf("endpoints without network settings = %v", got)
	}
}

func TestAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // a registry asking for credentials answers
	}))
	defer srv.Close()
	ctx := context.Background()
	if !answers(ctx, strings.TrimPrefix(srv.URL, "http://"), time.Second) {
		t.Error("a server answering 401 does not count as answering")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if answers(ctx, addr, time.Second) {
		t.Error("a closed port counts as answering")
	}
}

func TestWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  Registry
		want bool
	}{
		{"running registry", Registry{Containers: []Container{{State: "running", Registry: true}}}, false},
		{"read-only registry", Registry{Containers: []Container{{State: "running", Registry: true, ReadOnly: true}}}, true},
		{"stopped registry", Registry{Containers: []Container{{State: "exited", Registry: true}}}, true},
		{"a sharer runs", Registry{Containers: []Container{{State: "running", Registry: true, ReadOnly: true}, {State: "running"}}}, false},
		{"tasks elsewhere", Registry{Elsewhere: 1}, false},
	} {
		if got := tc.reg.WritesNothing(); got != tc.want {
			t.Errorf("%s: WritesNothing = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAfterMovesWithoutRestart covers what AfterMoves decides without an engine call:
// nothing stale, --no-restart, a registry paused by someone else, no cache.
func TestAfterMovesWithoutRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rep       *report.Report
		reg       Registry
		noRestart bool
		required  bool
		warning   string
	}{
		{"nothing stale", nothingStale(t), Registry{Containers: []Container{{Name: "r", State: "running", Registry: true, Cache: "inmemory"}}}, false, false, ""},
		{"--no-restart", staleReport(t), Registry{Containers: []Container{{Name: "r", State: "running", Registry: true, Cache: "inmemory"}}}, true, true, "--no-restart"},
		{"paused", staleReport(t), Registry{Containers: []Container{{Name: "r", State: "paused", Registry: true, Cache: "inmemory"}}}, false, true, "left so"},
		{"no cache", staleReport(t), Registry{Containers: []Container{{Name: "r", State: "running", Registry: true}}}, false, false, ""},
		{"read-only", staleReport(t), Registry{Containers: []Container{{Name: "r", State: "running", Registry: true, ReadOnly: true, Cache: "inmemory"}}}, false, false, ""},
	} {
		var warn bytes.Buffer
		reg := tc.reg
		o := (&Client{}).Online(&reg, Options{NoRestart: tc.noRestart, Warn: &warn})
		fresh, err := o.AfterMoves(context.Background(), tc.rep)
		if fresh || err != nil || o.Err() != nil {
			t.Errorf("%s: fresh %v, err %v, Err %v; want not fresh, no error", tc.name, fresh, err, o.Err())
		}
		required := tc.rep.Online != nil && tc.rep.Online.RestartRequired
		if required != tc.required || !strings.Contains(warn.String(), tc.warning) || (tc.warning == "") != (warn.Len() == 0) {
			t.Errorf("%s: restart required %v, warnings %q; want %v and a warning with %q", tc.name, required, warn.String(), tc.required, tc.warning)
		}
	}
}

// staleReport is the report of a real run that deleted one blob, which a cache may
// name.
func staleReport(t *testing.T) *report.Report {
	t.Helper()
	now := time.Now()
	b := inventory.NewBuilder("test")
	var d layout.Digest
	d[31] = 1
	b.Blob(d, 10, inventory.ToTime(now.Add(-48*time.Hour)))
	b.BlobsDone()
	inv := b.Build()
	p := plan.Make(inv, plan.Policy{UploadAge: 24 * time.Hour, Now: now})
	rep := report.New(inv, p, false)
	if !OutcomeOf(rep).CacheStale() {
		t.Fatal("the report of a deleted blob is not stale")
	}
	return rep
}

// nothingStale is the report of a real run that deleted nothing.
func nothingStale(t *testing.T) *report.Report {
	t.Helper()
	b := inventory.NewBuilder("test")
	b.BlobsDone()
	inv := b.Build()
	return report.New(inv, plan.Make(inv, plan.Policy{Now: time.Now()}), false)
}

// TestRunOutcomeRecovered: a run that purged an interrupted online run's quarantine
// does not know what that held: a cache may name any of it.
func TestRunOutcomeRecovered(t *testing.T) {
	rep := nothingStale(t)
	if RunOutcome(rep).CacheStale() {
		t.Fatal("a run that deleted nothing leaves the cache fresh")
	}
	rep.Online = &report.Online{Recovered: []string{"20261201T000000Z-00000000"}}
	if out := RunOutcome(rep); !out.Unknown || !out.CacheStale() {
		t.Errorf("after purging an interrupted run's quarantine: %+v, want Unknown", out)
	}
}
