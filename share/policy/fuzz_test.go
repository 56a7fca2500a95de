//go:build linux

package policy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/policy/policytest"
)

// FuzzClientPath feeds arbitrary client paths to the view (open+read,
// stat, lstat, readdir, readlink, realpath) and checks that nothing from
// outside the share ever comes back. The seed corpus in
// testdata/fuzz/FuzzClientPath runs as a regression test with plain
// `go test`; `go test -fuzz FuzzClientPath ./share/policy` searches for
// more.
func FuzzClientPath(f *testing.F) {
	fx := policytest.NewTree(f, true)
	for _, tc := range policytest.HostileCases(fx) {
		f.Add(tc.Path)
	}
	for _, p := range []string{"", ".", "/", "a.txt", "sub/deeper/random.bin", "link", "dirlink/b.txt"} {
		f.Add(p)
	}
	v, _ := testView(f, fx.Share, func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
	f.Fuzz(func(t *testing.T, p string) {
		// Never hang: a path that wedges the view is a bug too.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("request for %q hung for 10 s", p)) })
		defer watchdog.Stop()
		rel, err := clientToRel(p)
		if err == nil && rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("clientToRel(%q) = %q, not local", p, rel)
		}
		if err == nil && strings.IndexByte(rel, 0) >= 0 {
			t.Fatalf("clientToRel(%q) kept a NUL byte", p)
		}
		if data, err := readFile(v, p); err == nil && leaks(data) {
			t.Fatalf("open %q returned outside data", p)
		}
		if fis, err := readDir(v, p); err == nil {
			for _, fi := range fis {
				if fi.Name() == policytest.SecretName {
					t.Fatalf("readdir %q listed the outside directory", p)
				}
			}
		}
		for _, follow := range []bool{true, false} {
			e, err := v.Lookup("stat", p, follow)
			if err != nil {
				if strings.Contains(err.Error(), fx.Base) && !strings.Contains(p, fx.Base) {
					t.Fatalf("lookup %q: %v names a host path", p, err)
				}
				continue
			}
			if fi := e.Info(); fi.Size() == int64(len(policytest.SecretText)) && fi.Mode().IsRegular() {
				t.Fatalf("stat %q has the secret's size; it may be the outside file", p)
			}
			if target, err := v.Readlink(e); err == nil && (strings.Contains(target, fx.Outside) || strings.Contains(target, "outside")) {
				t.Fatalf("readlink %q = %q shows a path outside", p, target)
			}
		}
		if rp, err := v.RealPath(p); err == nil && (!strings.HasPrefix(rp, "/") || strings.Contains(rp, "/../")) {
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
		pemKey, der, policytest.Gzipped(f, pemKey), []byte(base64.StdEncoding.EncodeToString(pemKey)),
		[]byte(base64.StdEncoding.EncodeToString(policytest.Gzipped(f, der))),
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
