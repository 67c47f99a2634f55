// Command gentree writes a realistic distribution registry storage tree for benchmarks:
//
//	go run ./bench/cmd/gentree -preset medium -root /tmp/tree
//
// The same seed and knobs always give the same tree. -count only prints what would be
// written.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
)

func main() {
	fs := flag.NewFlagSet("gentree", flag.ContinueOnError)
	var root string
	var count bool
	cfg, err := gen.FromArgs(fs, os.Args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&root, "root", "", "storage root directory to write (the registry's rootdirectory)")
		fs.BoolVar(&count, "count", false, "print the counts of the tree without writing it")
	})
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(2)
	}
	if root == "" && !count {
		fmt.Fprintln(os.Stderr, "gentree: -root DIR or -count is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	started := time.Now()
	var st gen.Stats
	if count {
		st, err = gen.Count(cfg)
	} else {
		st, err = gen.Generate(ctx, root, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	fmt.Printf("%d files (%d blobs, %d revisions, %d layer links, %d tag links, %d upload files), "+
		"%d repositories, %d tags, %d bytes of blob data, in %.1fs\n",
		st.Files, st.Blobs, st.Revisions, st.LayerLinks, st.TagLinks, st.UploadFiles,
		st.Repositories, st.Tags, st.StoredBytes, time.Since(started).Seconds())
	fmt.Println("knobs:", cfg)
}
