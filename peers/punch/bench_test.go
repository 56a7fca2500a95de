//go:build unix

package punch

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/wanproxy"
)

// BenchmarkSSHTransfer reads 256 MiB through an SSH session over TCP and
// over a QUIC stream (the endpoint's default settings) on loopback, both
// ends in this process, taking turns within every iteration so that the
// machine's load hits both alike:
//
//	go test -run '^$' -bench SSHTransfer -benchtime 3x -count 5 ./peers/punch
//
// It reports each transport's MB/s and CPU seconds per GiB (the process's
// user+system time, both ends and the transports), and quic/tcp, the
// ratio of the throughputs.
func BenchmarkSSHTransfer(b *testing.B) {
	const size = 256 << 20
	host, client := newSigner(b), newSigner(b)
	tcp, quic := tcpSSH(b, host, client), quicSSH(b, host, client)
	var took [2]time.Duration
	var cpu [2]time.Duration
	for i := range b.N {
		for k := range 2 {
			k ^= i & 1 // alternate which goes first
			cl := []*ssh.Client{tcp, quic}[k]
			cpu0, start := cpuTime(), time.Now()
			readZeros(b, cl, size)
			took[k] += time.Since(start)
			cpu[k] += cpuTime() - cpu0
		}
	}
	gib := float64(size) * float64(b.N) / (1 << 30)
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / 1e6 / d.Seconds() }
	b.ReportMetric(mbs(took[0]), "tcp-MB/s")
	b.ReportMetric(mbs(took[1]), "quic-MB/s")
	b.ReportMetric(took[0].Seconds()/took[1].Seconds(), "quic/tcp")
	b.ReportMetric(cpu[0].Seconds()/gib, "tcp-cpu-s/GiB")
	b.ReportMetric(cpu[1].Seconds()/gib, "quic-cpu-s/GiB")
	b.ReportMetric(0, "ns/op")
}

// The WAN benchmark's path: testdata/wanproxy between the ends, half the
// RTT each way and the rate each way, as `make bench-wan` uses.
const (
	wanRTT  = 30 * time.Millisecond
	wanRate = 100e6 / 8 // 100 Mbit/s
	wanSize = 32 << 20
)

// BenchmarkWANRead reads 32 MiB through an SSH session at RTT 30 ms and
// 100 Mbit/s each way, over TCP through wanproxy's TCP mode and over QUIC
// through its UDP mode, taking turns: twice on each connection, the first
// read right after the connection is made (QUIC starts from its initial
// congestion window), the second ("again") where the first left it:
//
//	go test -run '^$' -bench WANRead -benchtime 3x -count 5 ./peers/punch
//
// The timed part opens the session (one round trip), starts the command
// (one more) and reads: the floor is 2 RTT plus 32 MiB at the rate. It
// reports the times, the floor, quic/tcp (the ratio of the times: >1 is
// QUIC slower) and the datagrams the UDP link dropped per read.
//
// The two are not alike: wanproxy's TCP mode ends TCP on loopback at each
// side and buffers up to 8 MiB between, so TCP's own slow start and loss
// never meet the RTT; QUIC runs end to end through the delay and a queue
// of one bandwidth-delay product that drops, as a router's does.
func BenchmarkWANRead(b *testing.B) {
	host, client := newSigner(b), newSigner(b)
	link := wanproxy.Link{Delay: wanRTT / 2, Rate: wanRate}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	sshServer(b, func(context.Context) (net.Conn, error) { return l.Accept() }, host, client, "tcp")
	tp := wanproxy.New(l.Addr().String(), link)
	srv, cli := newEndpoint(b, "A", Config{}), newEndpoint(b, "B", Config{})
	sshServer(b, srv.Accept, host, client, "quic")
	up := wanproxy.NewUDP(srv.Addr().String(), link)
	for _, p := range []interface {
		Listen() error
		Run(context.Context) error
	}{tp, up} {
		if err := p.Listen(); err != nil {
			b.Fatal(err)
		}
		go p.Run(ctx)
	}
	dial := [2]func() *ssh.Client{
		func() *ssh.Client {
			c, err := net.Dial("tcp", tp.Addr())
			if err != nil {
				b.Fatal(err)
			}
			return sshLogin(b, c, host, client)
		},
		func() *ssh.Client {
			p, err := cli.Dial(testCtx(b, time.Minute), netip.MustParseAddrPort(up.Addr()), "A")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			c, err := p.OpenStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			return sshLogin(b, c, host, client)
		},
	}
	// took[transport][0] is the first read on a new connection,
	// took[transport][1] the second on the same connection.
	var took [2][2]time.Duration
	var dropped int64
	for i := range b.N {
		for k := range 2 {
			k ^= i & 1
			cl := dial[k]()
			d0 := up.Dropped()
			for r := range 2 {
				start := time.Now()
				readZeros(b, cl, wanSize)
				took[k][r] += time.Since(start)
			}
			if k == 1 {
				dropped += up.Dropped() - d0
			}
			cl.Close()
		}
	}
	floor := 2*wanRTT.Seconds() + float64(wanSize)/wanRate
	n := float64(b.N)
	b.ReportMetric(took[0][0].Seconds()/n, "tcp-s")
	b.ReportMetric(took[1][0].Seconds()/n, "quic-s")
	b.ReportMetric(took[0][1].Seconds()/n, "tcp-again-s")
	b.ReportMetric(took[1][1].Seconds()/n, "quic-again-s")
	b.ReportMetric(floor, "floor-s")
	b.ReportMetric(took[1][0].Seconds()/took[0][0].Seconds(), "quic/tcp")
	b.ReportMetric(took[1][1].Seconds()/took[0][1].Seconds(), "again-quic/tcp")
	b.ReportMetric(float64(dropped)/n/2, "drops/read")
	b.ReportMetric(0, "ns/op")
}

// tcpSSH logs in over TCP on loopback to an SSH server of its own.
func tcpSSH(b *testing.B, host, client ssh.Signer) *ssh.Client {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	sshServer(b, func(context.Context) (net.Conn, error) { return l.Accept() }, host, client, "tcp")
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return sshLogin(b, c, host, client)
}

// quicSSH logs in over a QUIC stream on loopback, between two endpoints
// with the default settings.
func quicSSH(b *testing.B, host, client ssh.Signer) *ssh.Client {
	srv, cli := newEndpoint(b, "A", Config{}), newEndpoint(b, "B", Config{})
	sshServer(b, srv.Accept, host, client, "quic")
	ctx := testCtx(b, time.Minute)
	p, err := cli.Dial(ctx, srv.Addr(), "A")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	c, err := p.OpenStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return sshLogin(b, c, host, client)
}

func sshLogin(b *testing.B, c net.Conn, host, client ssh.Signer) *ssh.Client {
	cl, err := sshClient(c, host.PublicKey(), client)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

// readZeros reads size bytes of the server's "zeros" command on a new
// session.
func readZeros(b *testing.B, cl *ssh.Client, size int64) {
	sess, err := cl.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
