//go:build linux

package policy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestScanWindow: the fixture's keys at the window's edge sit where the
// scan's window ends.
func TestScanWindow(t *testing.T) {
	if policytest.ScanWindow != keyScanBytes || listScanMax != keyScanBytes {
		t.Fatalf("policytest.ScanWindow = %d, keyScanBytes = %d, listScanMax = %d; want all equal", policytest.ScanWindow, keyScanBytes, listScanMax)
	}
}

func TestTextKey(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", true},
		{"-----BEGIN RSA PRIVATE KEY-----\n", true},
		{"-----BEGIN EC PRIVATE KEY-----\n", true},
		{"-----BEGIN ENCRYPTED PRIVATE KEY-----\n", true},
		{"-----BEGIN PRIVATE KEY-----\n", true},
		{"-----BEGIN PGP PRIVATE KEY BLOCK-----\n", true},
		{"notes\n  -----BEGIN PRIVATE KEY-----\n", true},
		{"PuTTY-User-Key-File-2: ssh-rsa\n", true},
		{"xx openssh-key-v1\x00yy", true},
		{"openssh-key-v1\x00", true},
		{"------BEGIN PRIVATE KEY-----\n", true},
		{strings.Repeat("-", 10000) + "BEGIN RSA PRIVATE KEY-----\n", true},
		{strings.Repeat("--+", 10000) + "PuTTY-User-Key-File-3", true},
		{strings.Repeat("-", 10000), false},
		{"PuTT-User-Key-File-3", false},
		{"opensh-key-v1\x00", false},
		{"-----BEGIN " + strings.Repeat("A", 100) + " PRIVATE KEY-----", false},
		{"-----BEGIN CERTIFICATE-----\n", false},
		{"-----BEGIN PUBLIC KEY-----\n", false},
		{"keep your PRIVATE KEY-----safe", false},
		{"-----BEGIN a private key PRIVATE KEY-----", false},
		{"ssh-ed25519 AAAAC3Nza me@host\n", false},
		{"", false},
	} {
		if got := textKey([]byte(c.text)) != ""; got != c.want {
			t.Errorf("textKey(%q) = %v; want %v", c.text, got, c.want)
		}
	}
}

// TestKeyForms checks the secret check on every form of key: each
// refused one with its reason logged, each near miss served.
func TestKeyForms(t *testing.T) {
	f := policytest.NewKeyForms(t)
	var logs bytes.Buffer
	g := newSecretGuard([]string{f.Token, f.HostKey}, f.SecretDirs(), &refusalLog{log: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, kf := range f.Forms {
		t.Run(kf.Name, func(t *testing.T) {
			logs.Reset()
			file, err := os.Open(filepath.Join(f.Share, kf.Name))
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			fi, err := file.Stat()
			if err != nil {
				t.Fatal(err)
			}
			err = g.check(file, fi, kf.Name)
			switch {
			case kf.Why == "" && err != nil:
				t.Errorf("check = %v; want served\n%s", err, logs.String())
			case kf.Why != "" && !errors.Is(err, errSecret):
				t.Errorf("check = %v; want refused (%s)", err, kf.Why)
			case kf.Why != "" && !strings.Contains(logs.String(), "why="+strconv.Quote(kf.Why)):
				t.Errorf("log %q; want why=%q", logs.String(), kf.Why)
			}
		})
	}
}

// TestSecretDirsRefresh: a file that appears in a secret directory after
// the share started is refused through a hard link within seconds, and
// so is a copy of a token file written since.
func TestSecretDirsRefresh(t *testing.T) {
	base := t.TempDir()
	sshDir, share := filepath.Join(base, ".ssh"), filepath.Join(base, "share")
	for _, d := range []string{sshDir, share} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	token := filepath.Join(base, "discord-token")
	var logs testenv.SyncBuffer
	g := newSecretGuard([]string{token}, []string{sshDir}, &refusalLog{log: slog.New(slog.NewTextHandler(&logs, nil))})
	check := func(name string) error {
		f, err := os.Open(filepath.Join(share, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return g.check(f, fi, name)
	}
	hosts := filepath.Join(sshDir, "known_hosts")
	if err := os.WriteFile(hosts, []byte("example.org ssh-ed25519 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(hosts, filepath.Join(share, "hosts")); err != nil {
		t.Fatal(err)
	}
	const tok = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GAbCdE.a-new-token-written-after-the-start"
	if err := os.WriteFile(token, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "copy"), []byte(tok), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the hard link to be refused", func() bool { return errors.Is(check("hosts"), errSecret) })
	testenv.WaitFor(t, 10*time.Second, "the token's copy to be refused", func() bool { return errors.Is(check("copy"), errSecret) })
	if l := logs.String(); !strings.Contains(l, "same file as one in "+sshDir) || !strings.Contains(l, "copy of a dsftp secret") {
		t.Errorf("refusals not logged with their reasons:\n%s", l)
	}
}

// BenchmarkSecretCheck times the secret check that runs on every open, on
// files of several sizes read from the page cache: English text, text
// full of near-miss words, random binary, gzip of text and base64 of
// random bytes (the last two are the size of their content).
func BenchmarkSecretCheck(b *testing.B) {
	dir := b.TempDir()
	g := newSecretGuard(nil, defaultSecretDirs(), &refusalLog{log: slog.New(slog.DiscardHandler)})
	text := func(line string, size int64) []byte {
		return []byte(strings.Repeat(line, int(size)/len(line)+1)[:size])
	}
	rng := rand.NewChaCha8([32]byte{})
	random := func(size int64) []byte {
		raw := make([]byte, size)
		_, _ = rng.Read(raw)
		return raw
	}
	const english = "The quick brown fox jumps over the lazy dog, 0123456789.\n"
	content := map[string]func(int64) []byte{
		"text":     func(n int64) []byte { return text(english, n) },
		"keywords": func(n int64) []byte { return text("Some ordinary text, PRIVATE notes and KEY words.\n", n) },
		"random":   random,
		"gzip":     func(n int64) []byte { return policytest.Gzipped(b, text(english, n)) },
		"base64": func(n int64) []byte {
			return []byte(policytest.Lines(base64.StdEncoding.EncodeToString(random(n*3/4)), 76))
		},
	}
	for _, size := range []int64{4 << 10, 64 << 10, 256 << 10, 1 << 20, 16 << 20} {
		for _, kind := range []string{"text", "keywords", "random", "gzip", "base64"} {
			p := filepath.Join(dir, fmt.Sprintf("%s-%d", kind, size))
			if err := os.WriteFile(p, content[kind](size), 0o644); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%dKiB", kind, size>>10), func(b *testing.B) {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for range b.N {
					if err := g.check(f, fi, "x"); err != nil {
						b.Fatalf("check: %v", err)
					}
				}
			})
		}
	}
}

// BenchmarkSecretLookup times one look-up of the secret identities with
// the secret directories at their bound (maxSecretEntries files): the
// work one open does every secretRefresh.
func BenchmarkSecretLookup(b *testing.B) {
	dir := b.TempDir()
	for i := range maxSecretEntries {
		sub := filepath.Join(dir, strconv.Itoa(i%16))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	ids := &secretIDs{dirs: []string{dir}, log: slog.New(slog.DiscardHandler)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if set := ids.lookup(); len(set.ids) == 0 {
			b.Fatal("no identities")
		}
	}
}
