//go:build unix

package punch

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// BenchmarkSSHTransfer reads 256 MiB through one SSH session, over TCP and
// over a QUIC stream, on loopback, both ends in this process:
//
//	go test -run '^$' -bench SSHTransfer -benchtime 3x ./peers/punch
//
// MB/s is the throughput; cpu-s/GiB the process's CPU time (user+system,
// both ends and the transports) per GiB moved.
func BenchmarkSSHTransfer(b *testing.B) {
	const size = 256 << 20
	host, client := newSigner(b), newSigner(b)
	b.Run("tcp", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		sshServer(b, func(context.Context) (net.Conn, error) { return l.Accept() }, host, client, "tcp")
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		benchSSH(b, c, host, client, size)
	})
	b.Run("quic", func(b *testing.B) {
		srv, cli := newEndpoint(b, "A", Config{StreamWindow: 16 << 20, ConnWindow: 32 << 20}), newEndpoint(b, "B", Config{StreamWindow: 16 << 20, ConnWindow: 32 << 20})
		sshServer(b, srv.Accept, host, client, "quic")
		ctx := testCtx(b, time.Minute)
		p, err := cli.Dial(ctx, srv.Addr(), "A")
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		c, err := p.OpenStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		benchSSH(b, c, host, client, size)
	})
}

func benchSSH(b *testing.B, c net.Conn, host ssh.Signer, client ssh.Signer, size int64) {
	cl, err := sshClient(c, host.PublicKey(), client)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.SetBytes(size)
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		sess, err := cl.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		out, err := sess.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := sess.Start(fmt.Sprintf("zeros %d", size)); err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, out)
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v; want %d", n, err, size)
		}
		sess.Wait()
	}
	b.StopTimer()
	gib := float64(size) * float64(b.N) / (1 << 30)
	b.ReportMetric((cpuTime()-cpu0).Seconds()/gib, "cpu-s/GiB")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
