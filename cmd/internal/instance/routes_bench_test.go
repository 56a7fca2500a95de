//go:build linux

package instance

import (
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRoutes reads a 1 GiB file (sparse: the transport is measured,
// not the disk) from c's share on loopback through the pool's read-ahead
// reader, as a mount or `dsftp get` does: directly, over c's reverse
// connection (an SSH connection inside a channel of another: encrypted
// twice), and through a relay (b's SSH connection to c inside a channel
// of b's connection to a, and a's channel over c's reverse connection;
// no relay cap). Not part of make test:
//
//	go test -run '^$' -bench Routes -benchtime 1x -count 3 ./cmd/internal/instance
func BenchmarkRoutes(b *testing.B) {
	const size = 1 << 30
	// As `dsftp mount` runs (cmd/dsftp/mount.go): the members here are
	// mounts, and the GC target changes bulk reads by a third.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	l := newRouteLab(b)
	a := l.add("a", b.TempDir(), true, memberOpts{})
	c := l.add("c", dir, false, memberOpts{advertise: deadAddr(b), keepRoutes: true, conns: 1})
	rb := l.add("b", b.TempDir(), false, memberOpts{advertise: deadAddr(b)})
	cID := c.srv.Fingerprint()
	waitFor(b, 15*time.Second, "a holds c's reverse connection", func() bool { return len(l.entry("c").Via) == 1 })
	direct, err := pool.New(pool.Options{RunKey: a.pool.RunKey(), Timeout: 10 * time.Second, User: "dsftp", Logger: l.log})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	cDirect := l.entry("c")
	cDirect.Addrs = []string{c.srv.Addrs()[0].String()}

	ctx := testenv.Context(b, 10*time.Minute)
	read := func(b *testing.B, p *pool.Pool, peer peers.Peer, route string) {
		b.SetBytes(size)
		cpu0 := cpuTime()
		for b.Loop() {
			r, err := p.OpenReader(ctx, peer, "big", size)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, r, make([]byte, 1<<20))
			r.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			if got := p.Route(cID); got != route {
				b.Fatalf("read by %q, want %s", got, route)
			}
		}
		// CPU of both ends (all in this process) per GiB: on a shared
		// machine steadier than the wall clock.
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/GiB")
	}
	b.Run("direct", func(b *testing.B) { read(b, direct, cDirect, "direct") })
	b.Run("reverse", func(b *testing.B) { read(b, a.pool, l.entry("c"), "reverse") })
	b.Run("relay", func(b *testing.B) { read(b, rb.pool, l.entry("c"), "relay via a") })
}
