package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/download"
	"github.com/dsftp/dsftp/cmd/internal/shell"
	"github.com/dsftp/dsftp/peers"
)

// ErrSpec is wrapped by SplitSpec when the argument is not PEER:PATH; the
// command reports it as a usage error.
var ErrSpec = errors.New("want PEER:PATH")

// errUnknownPeer: no registered name is a prefix of the spec (yet).
var errUnknownPeer = errors.New("unknown peer")

// SplitSpec splits PEER:PATH, preferring the longest peer name in reg
// before a colon. With reg nil it only checks the form.
func SplitSpec(spec string, reg *peers.Registry) (name, path string, err error) {
	if !strings.Contains(spec, ":") {
		return "", "", fmt.Errorf("%q: %w, e.g. alice:photos/cat.jpg", spec, ErrSpec)
	}
	if reg == nil {
		return "", "", nil
	}
	for i := len(spec) - 1; i >= 0; i-- {
		if spec[i] != ':' {
			continue
		}
		if _, ok := reg.Get(spec[:i]); ok {
			return spec[:i], spec[i+1:], nil
		}
	}
	return "", "", errUnknownPeer
}

// Known reports whether spec names a peer reg holds now.
func Known(spec string, reg *peers.Registry) bool {
	_, _, err := SplitSpec(spec, reg)
	return err == nil
}

// settleCheck is how often FindPeer asks whether discovery has settled.
const settleCheck = 100 * time.Millisecond

// FindPeer splits PEER:PATH, preferring the longest registered peer name
// before a colon, and waits until deadline for the peer to appear, or
// until discovery has settled (settling, if not nil, returns false: the
// channel's history is read and the LAN peers have answered), when
// nothing more is coming. why says, for the error, how long and where we
// looked.
func FindPeer(ctx context.Context, reg *peers.Registry, spec string, deadline time.Time, why string, settling func() bool) (name, path string, err error) {
	ch, stop := reg.Watch()
	defer stop()
	timer := time.NewTimer(max(time.Until(deadline), 0))
	defer timer.Stop()
	tick := time.NewTicker(settleCheck)
	defer tick.Stop()
	for {
		name, path, err := SplitSpec(spec, reg)
		if err == nil || !errors.Is(err, errUnknownPeer) {
			return name, path, err
		}
		select {
		case <-ch:
			continue
		case <-tick.C:
			if settling == nil || settling() {
				continue
			}
			why = "discovery has found every peer that is online now, and none by that name"
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-timer.C:
		}
		return "", "", unknownPeer(reg, spec[:strings.Index(spec, ":")], why)
	}
}

// unknownPeer says that want was not found, and what was.
func unknownPeer(reg *peers.Registry, want, why string) error {
	var names []string
	for _, e := range reg.List() {
		names = append(names, e.DisplayName)
	}
	msg := fmt.Sprintf("unknown peer %q (%s)", want, why)
	if near, ok := shell.Closest(want, names); ok {
		msg += fmt.Sprintf("; did you mean %q?", near)
	} else if len(names) > 0 {
		msg += "; known peers: " + strings.Join(names, ", ")
	}
	return errors.New(msg)
}

// ConnectAccepted connects to the peer name. A discovered peer lets our key
// in only once it has seen our advert, a moment after we posted it, so a
// refused key is retried until deadline (the pool's backoff is reset each
// time, so the next try dials at once).
func (r *Remote) ConnectAccepted(ctx context.Context, name string, deadline time.Time, wait time.Duration) (download.Source, error) {
	for {
		src, err := r.Connect(ctx, name)
		if err == nil || !errors.Is(err, ErrNotAccepted) {
			return src, err
		}
		r.Disconnect(name)
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("peer %s did not accept our key within --wait %v: its share lets in only keys of live adverts in the channel (or on the LAN) it reads; check that it uses the same --channel (and --allow-user lets our bot in), or try a longer --wait", name, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(left, 300*time.Millisecond)):
		}
	}
}
