package main

// Reachability wiring: the UPnP port mapping and the advertised addresses,
// shared by every command that serves a share (`dsftp share`, `dsftp mount`).
//
//	var rf upnpFlags
//	rf.register(cmd.Flags())
//	…
//	tr, err := startReachability(ctx, &rf, srv.Port(), cmd.ErrOrStderr(), func(as []reach.Addr) { … })
//	…
//	<-ctx.Done(); tr.Wait() // the mapping is removed before exit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/share/portmap"
	"github.com/dsftp/dsftp/share/reach"
)

// upnpFlags are the reachability flags.
type upnpFlags struct {
	noUPnP    bool
	advertise []string
	lease     time.Duration
}

func (f *upnpFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.noUPnP, "no-upnp", false, "do not ask the home router to forward the share's port (UPnP)")
	fs.StringArrayVar(&f.advertise, "advertise", nil, "also advertise `HOST:PORT` to peers, e.g. a port you forwarded by hand or a VPS (repeatable)")
	fs.DurationVar(&f.lease, "upnp-lease", portmap.DefaultLease, "lease of the UPnP port mapping; renewed at half of it")
	// Only tests need another lease; a short one just makes the router busy.
	_ = fs.MarkHidden("upnp-lease")
}

// check validates the flags and returns the canonical --advertise values.
func (f *upnpFlags) check() ([]string, error) {
	var out []string
	for _, a := range f.advertise {
		v, err := reach.ParseAdvertise(a)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, v)
	}
	if f.lease < 0 || (f.lease > 0 && f.lease < 2*time.Second) {
		return nil, usageError{fmt.Errorf("--upnp-lease %v: want at least 2s", f.lease)}
	}
	return out, nil
}

// startReachability starts mapping the port of listen (the address the
// share bound) on the router, unless --no-upnp or listen is a specific
// address such as 127.0.0.1, and calls onChange with the advertised addresses: at once with the local
// and --advertise ones, then after every change (mapping made, lost,
// external address changed). Warnings for the user go to warnOut. When
// ctx is done the mapping is removed; Tracker.Wait returns after that.
func startReachability(ctx context.Context, f *upnpFlags, listen netip.AddrPort, warnOut io.Writer, onChange func([]reach.Addr)) (*reach.Tracker, error) {
	adv, err := f.check()
	if err != nil {
		return nil, err
	}
	if listen.Port() == 0 {
		return nil, fmt.Errorf("start port mapping: the share has no port (listening on %v)", listen)
	}
	var mu sync.Mutex // warnings and onChange may interleave otherwise
	return reach.Track(ctx, reach.TrackOptions{
		Port:      listen.Port(),
		Bind:      listen.Addr(),
		Advertise: adv,
		NoUPnP:    f.noUPnP,
		Lease:     f.lease,
		Logger:    slog.Default(),
		Warn: func(text string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(warnOut, "dsftp: warning: %s\n", strings.ReplaceAll(text, "\n", "\n  "))
		},
		OnChange: func(as []reach.Addr) {
			mu.Lock()
			defer mu.Unlock()
			slog.Debug("advertised addresses", "addrs", strings.Join(reach.Strings(as), " "))
			if onChange != nil {
				onChange(as)
			}
		},
	}), nil
}

// writeAddrs prints the advertised addresses with their reasons, for the
// start-up banner and for later changes.
func writeAddrs(w io.Writer, as []reach.Addr) {
	if len(as) == 0 {
		fmt.Fprintln(w, "Advertised addresses: none (no network address found; use --advertise HOST:PORT)")
		return
	}
	fmt.Fprintln(w, "Advertised addresses:")
	reach.Write(w, as)
}
