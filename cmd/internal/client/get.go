package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// Get is `dsftp get`: it waits up to wait for the peer of spec (PEER:PATH)
// to appear (only when discovering: else only --peer peers count) and to
// accept our key, then downloads PATH into dest, with progress and the
// closing summary on out.
func (r *Remote) Get(ctx context.Context, spec, dest string, opts download.Options, discovering bool, wait time.Duration, out io.Writer) error {
	// --wait counts from when discovery is listening (and our advert is
	// out), for finding PEER and for it accepting us.
	deadline := time.Now().Add(wait)
	why := fmt.Sprintf("none by that name appeared within --wait %v", wait)
	if !discovering {
		deadline = time.Now() // only --peer peers: nothing will arrive
		why = "not a --peer name, and --discovery is off"
	}
	name, remotePath, err := FindPeer(ctx, r.opts.Registry, spec, deadline, why, r.opts.Settling)
	if err != nil {
		return err
	}
	src, err := r.ConnectAccepted(ctx, name, deadline, wait)
	if err != nil {
		return err
	}
	opts.Progress = download.ProgressFor(out)
	opts.Origin = r.Origin(name)
	opts.RootName = name
	start := time.Now()
	res, err := download.Get(ctx, src, remotePath, dest, opts)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("interrupted; the .part file is kept: run the same command again to resume")
		}
		return err
	}
	took := time.Since(start)
	fmt.Fprintln(out, res.Summary(took))
	var resumed int64
	for _, f := range res.Files {
		resumed += f.Resumed
	}
	slog.Info("downloaded", "peer", name, "files", len(res.Files), "bytes", res.Bytes,
		"fetched", res.Fetched, "resumed", resumed, "took", took)
	return nil
}
