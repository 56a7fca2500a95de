//go:build linux

package share

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// FuzzDetectKey feeds arbitrary file contents to the key detector (the
// DER, PKCS#12, gzip and base64 parsers run on what a share holds). It
// must not panic or hang, a whole small file must get the same answer
// from scanFile as from detectKey, and a key in a text form must still be
// found past the first window.
func FuzzDetectKey(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		f.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, seed := range [][]byte{
		pemKey, der, gzipped(f, pemKey), []byte(base64.StdEncoding.EncodeToString(pemKey)),
		[]byte(base64.StdEncoding.EncodeToString(gzipped(f, der))),
		{0x30, 0x03, 0x02, 0x01, 0x03}, {0x1f, 0x8b}, []byte("-----BEGIN X PRIVATE KEY"), nil,
	} {
		f.Add(seed)
	}
	pad := bytes.Repeat([]byte("padding line\n"), (100<<10)/13)
	f.Fuzz(func(t *testing.T, b []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("detectKey of %d bytes hung for 10 s", len(b))) })
		defer watchdog.Stop()
		why := detectKey(b, true, unwrapDepth)
		if fast, dense := textKey(b), textKeyDense(b); (fast == "") != (dense == "") {
			t.Fatalf("textKey = %q, textKeyDense = %q", fast, dense)
		}
		_ = detectKey(b, false, unwrapDepth)
		if len(b) <= keyScanBytes+scanMargin {
			got, err := scanFile(bytes.NewReader(b), int64(len(b)), nil)
			if err != nil || got != why {
				t.Fatalf("scanFile = %q, %v; detectKey = %q", got, err, why)
			}
		}
		if text := textKey(b); text != "" && len(b) < 64<<10 {
			padded := append(append(slices.Clip(pad), '\n'), b...)
			if got, _ := scanFile(bytes.NewReader(padded), int64(len(padded)), nil); got == "" {
				t.Fatalf("%s after 100 KiB of text not found", text)
			}
		}
	})
}
