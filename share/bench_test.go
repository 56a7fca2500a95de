//go:build linux

package share

import (
	"context"
	"fmt"
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
	// At the default log level: the share logs its port at info.
	n := testenv.StartNode(b, testenv.NodeOptions{}, "share", share, "--listen", "127.0.0.1:0", "--authorized-keys", key.Path+".pub")
	sharePort, _ := n.ShareReady(b)
	port := strconv.Itoa(sharePort)

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
