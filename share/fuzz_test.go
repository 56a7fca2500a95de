//go:build linux

package share

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// pipeConn joins two io.Pipes into the ReadWriteCloser a request server
// wants.
type pipeConn struct {
	io.Reader
	io.WriteCloser
}

// inProcessClient serves f.share with the real handlers over in-memory
// pipes (no SSH) and returns a pkg/sftp client for it: fast enough for a
// fuzz target, with the same request server and handlers as the real one.
func inProcessClient(t testing.TB, f *fixture) *sftp.Client {
	t.Helper()
	root, err := os.OpenRoot(f.share)
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(f.share)
	if err != nil {
		t.Fatal(err)
	}
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	var handles atomic.Int64
	log := slog.New(slog.DiscardHandler)
	v := &view{root: root, rootReal: real}
	h := newFSHandlers(v, &secretGuard{log: &refusalLog{log: log}}, &handles, 64, log, nil)
	rs := sftp.NewRequestServer(pipeConn{c2sR, s2cW}, h.handlers(), sftp.WithRSMaxTxPacket(maxReadData))
	done := make(chan struct{})
	// Closing the server side when Serve ends lets the client's Close finish.
	go func() { defer close(done); _ = rs.Serve(); rs.Close() }()
	c, err := sftp.NewClientPipe(s2cR, c2sW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		rs.Close()
		<-done
		root.Close()
	})
	return c
}

// FuzzClientPath feeds arbitrary client paths to the handlers (open+read,
// stat, lstat, readdir, readlink, realpath) and checks that nothing from
// outside the share ever comes back. The seed corpus in
// testdata/fuzz/FuzzClientPath runs as a regression test with plain
// `go test`; `go test -fuzz FuzzClientPath ./share` searches for more.
func FuzzClientPath(f *testing.F) {
	fx := newFixture(f, true)
	for _, tc := range hostileCases(fx) {
		f.Add(tc.path)
	}
	for _, p := range []string{"", ".", "/", "a.txt", "sub/deeper/random.bin", "link", "dirlink/b.txt"} {
		f.Add(p)
	}
	c := inProcessClient(f, fx)
	f.Fuzz(func(t *testing.T, p string) {
		// Never hang: a path that wedges the server is a bug too.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("request for %q hung for 10 s", p)) })
		defer watchdog.Stop()
		rel, err := clientToRel(p)
		if err == nil && rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("clientToRel(%q) = %q, not local", p, rel)
		}
		if err == nil && strings.IndexByte(rel, 0) >= 0 {
			t.Fatalf("clientToRel(%q) kept a NUL byte", p)
		}
		if data, err := readAllRemote(c, p); err == nil && leaks(data) {
			t.Fatalf("open %q returned outside data", p)
		}
		if entries, err := c.ReadDir(p); err == nil {
			for _, e := range entries {
				if e.Name() == secretName {
					t.Fatalf("readdir %q listed the outside directory", p)
				}
			}
		}
		if fi, err := c.Stat(p); err == nil && fi.Size() == int64(len(secretText)) && fi.Mode().IsRegular() {
			t.Fatalf("stat %q has the secret's size; it may be the outside file", p)
		}
		if target, err := c.ReadLink(p); err == nil && (strings.Contains(target, fx.outside) || strings.Contains(target, "outside")) {
			t.Fatalf("readlink %q = %q shows a path outside", p, target)
		}
		if rp, err := c.RealPath(p); err == nil && (!strings.HasPrefix(rp, "/") || strings.Contains(rp, "/../")) {
			t.Fatalf("realpath %q = %q", p, rp)
		}
	})
}

func leaks(data []byte) bool {
	return bytes.Contains(data, []byte("TOP-SECRET")) || bytes.Contains(data, []byte("root:x:0:0"))
}
