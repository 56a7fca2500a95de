//go:build linux

package share

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// BenchmarkSFTPGet times OpenSSH `sftp get` of one big file (1 GiB, or
// DSFTP_BENCH_MB MiB) from the dsftp binary and from OpenSSH's sshd
// (internal-sftp) serving the same file on loopback, alternating between
// the two within one run. Not part of `go test`; run it with
//
//	share/testdata/bench-get.sh        (or)
//	go test -run '^$' -bench SFTPGet -benchtime 3x ./share
//
// Build without -race: the race detector makes the server several times
// slower.
func BenchmarkSFTPGet(b *testing.B) {
	sftpPath := testenv.Require(b, "sftp")[0]
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("DSFTP_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dir := b.TempDir()
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		b.Fatal(err)
	}
	big := filepath.Join(share, "big.bin")
	writeRandomFile(b, big, int64(mb)<<20)

	// dsftp share, the real binary.
	key := testenv.NewKey(b, dir, "client")
	bin := testenv.Binary(b)
	p := testenv.Start(b, nil, bin, "share", share, "--listen", "127.0.0.1:0", "--authorized-keys", key.Path+".pub", "--log-level", "warn")
	p.WaitOutput(b, "dsftp share ready on port ", 60*time.Second)
	out := p.Output.String()
	i := strings.Index(out, "dsftp share ready on port ")
	port := strings.Fields(out[i+len("dsftp share ready on port "):])[0]

	sshd := testenv.StartSSHD(b, share)

	get := func(b *testing.B, port, user, keyPath, remote string, extra ...string) time.Duration {
		batch := filepath.Join(dir, "batch")
		if err := os.WriteFile(batch, []byte("get "+remote+" /dev/null\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		args := append([]string{"-q", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", keyPath,
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-P", port, "-b", batch}, extra...)
		args = append(args, user+"@127.0.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		if out, err := exec.CommandContext(ctx, sftpPath, args...).CombinedOutput(); err != nil {
			b.Fatalf("sftp get: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	// Each OpenSSH client default (chacha20 against sshd, aes128-gcm
	// against dsftp, the only cipher it offers), then both forced to
	// aes128-gcm; each with
	// sftp's default 32 KiB reads and with 255 KiB reads.
	for _, cipher := range []string{"default", "aes128-gcm@openssh.com"} {
		for _, buf := range []string{"default", "261120"} {
			var extra []string
			if cipher != "default" {
				extra = append(extra, "-c", cipher)
			}
			if buf != "default" {
				extra = append(extra, "-B", buf)
			}
			name := fmt.Sprintf("cipher=%s/buf=%s", strings.TrimSuffix(cipher, "@openssh.com"), buf)
			b.Run("dsftp/"+name, func(b *testing.B) {
				b.SetBytes(int64(mb) << 20)
				var total time.Duration
				for range b.N {
					total += get(b, port, "dsftp", key.Path, "/big.bin", extra...)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/get")
			})
			b.Run("sshd/"+name, func(b *testing.B) {
				b.SetBytes(int64(mb) << 20)
				var total time.Duration
				for range b.N {
					total += get(b, strconv.Itoa(sshd.Port), sshd.User(), sshd.Client.Path, big, extra...)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/get")
			})
		}
	}
}

// writeRandomFile writes size pseudo-random bytes (incompressible enough
// for a transfer benchmark, and fast to make).
func writeRandomFile(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	x := uint64(0x9e3779b97f4a7c15)
	for written := int64(0); written < size; written += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for j := range 8 {
				buf[i+j] = byte(x >> (8 * j))
			}
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
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
	random := func(size int64) []byte {
		p := filepath.Join(dir, "random")
		writeRandomFile(b, p, size)
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return raw[:size]
	}
	const english = "The quick brown fox jumps over the lazy dog, 0123456789.\n"
	content := map[string]func(int64) []byte{
		"text":     func(n int64) []byte { return text(english, n) },
		"keywords": func(n int64) []byte { return text("Some ordinary text, PRIVATE notes and KEY words.\n", n) },
		"random":   random,
		"gzip":     func(n int64) []byte { return gzipped(b, text(english, n)) },
		"base64":   func(n int64) []byte { return []byte(lines(base64.StdEncoding.EncodeToString(random(n*3/4)), 76)) },
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
