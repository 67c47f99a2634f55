// Command probe runs the Docker runtime from inside a container, as a dockerized
// clean-registry would: resolve a target, quiesce it, clean the storage at the path
// this container sees, restore. It prints what it saw as JSON, for the tests in
// test/docker; it is not part of the product.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/client"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

type result struct {
	Kind      string   `json:"kind"`
	Root      string   `json:"root"`
	HostRoot  string   `json:"host_root"`
	Quiesced  bool     `json:"quiesced"`
	States    []string `json:"states_during"`
	Deletions int      `json:"deletions"`
	Error     string   `json:"error,omitempty"`
}

func main() {
	volume := flag.Bool("v", false, "the target is a volume")
	flag.Parse()
	res := run(flag.Arg(0), *volume)
	json.NewEncoder(os.Stdout).Encode(res)
}

func run(target string, volume bool) (res result) {
	ctx := context.Background()
	c, err := docker.NewClient(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	opts := docker.Options{Volume: volume, Log: os.Stderr, Warn: os.Stderr}
	reg, err := c.Resolve(ctx, target, opts)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Kind, res.Root, res.HostRoot = reg.Kind, reg.Storage.Root, reg.Storage.HostRoot
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer api.Close()
	err = c.WithQuiesced(ctx, reg, opts, func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
		res.Quiesced = quiesced
		for _, m := range reg.Containers {
			ins, err := api.ContainerInspect(ctx, m.ID)
			if err != nil {
				return docker.Outcome{}, err
			}
			res.States = append(res.States, ins.State.Status)
		}
		b, err := fs.New(reg.Storage.Root, 4)
		if err != nil {
			return docker.Outcome{}, err
		}
		rep, err := clean.Run(ctx, b, clean.Options{UploadAge: 24 * time.Hour, Jobs: 4})
		if rep != nil {
			res.Deletions = rep.Total.Count
		}
		return docker.OutcomeOf(rep), err
	})
	if err != nil {
		res.Error = fmt.Sprint(err)
	}
	return res
}
