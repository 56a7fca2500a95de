//go:build linux

package share

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sshStream builds what an SSH server writes: the version line, n plain
// packets (the last a NEWKEYS), then GCM-framed packets of random sizes.
// It returns the packets (the version line first) so a test can write
// them one by one like the transport does.
func sshStream(rng *rand.Rand, plain, gcm int) [][]byte {
	out := [][]byte{[]byte("SSH-2.0-dsftp\r\n")}
	for i := range plain {
		body := make([]byte, 1+rng.IntN(3000)) // padding length, payload, padding
		body[0] = 4
		if len(body) < 2 {
			body = append(body, 0)
		}
		body[1] = 20 // KEXINIT-ish
		if i == plain-1 {
			body[1] = msgNewKeysType
		}
		out = append(out, binary.BigEndian.AppendUint32(nil, uint32(len(body))))
		out[len(out)-1] = append(out[len(out)-1], body...)
	}
	for range gcm {
		l := 16 + rng.IntN(3)*rng.IntN(40000)
		pkt := binary.BigEndian.AppendUint32(nil, uint32(l))
		body := make([]byte, l+16) // AES-GCM tag
		for i := range body {
			body[i] = byte(rng.IntN(256)) // ciphertext: any bytes, also 21
		}
		out = append(out, append(pkt, body...))
	}
	return out
}

func TestPacketConnWholePackets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 8 {
		pkts := sshStream(rng, 1+round%4, 100)
		var got []byte
		var ends []int // stream offsets at which a write ended
		c := newPacketConn(nil)
		c.testHookWrite = func(bufs [][]byte) {
			for _, b := range bufs {
				got = append(got, b...)
			}
			ends = append(ends, len(got))
		}
		// Like x/crypto/ssh: a 4 KiB bufio.Writer, flushed after each
		// packet, written in pieces (length prefix, then the rest).
		w := bufio.NewWriterSize(c, 4096)
		var want []byte
		var bounds []int
		for _, p := range pkts {
			cut := min(len(p), 4)
			if _, err := w.Write(p[:cut]); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(p[cut:]); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
			bounds = append(bounds, len(want))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: stream changed (%d bytes, want %d)", round, len(got), len(want))
		}
		if c.state.Load() != stateGCM {
			t.Fatalf("round %d: state %d after the stream, want GCM framing", round, c.state.Load())
		}
		if !slices.Equal(ends, bounds) {
			t.Fatalf("round %d: %d writes, want one per packet (%d)", round, len(ends), len(bounds))
		}
	}
}

// A length no SSH packet has turns the conn into a pass-through: every
// byte still goes out, nothing is held back.
func TestPacketConnPassThrough(t *testing.T) {
	var got []byte
	c := newPacketConn(nil)
	c.testHookWrite = func(bufs [][]byte) {
		for _, b := range bufs {
			got = append(got, b...)
		}
	}
	in := [][]byte{[]byte("SSH-2.0-x\r\n"), {0xff, 0xff, 0xff, 0xff, 1, 2, 3}, []byte("more")}
	var want []byte
	for _, b := range in {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	if !bytes.Equal(got, want) || c.state.Load() != statePass {
		t.Fatalf("got %q (state %d), want %q passed through", got, c.state.Load(), want)
	}
}

// Through the real server, with key re-exchanges every few KiB in both
// directions (the client's and the server's threshold), file data arrives
// intact: packetConn keeps finding packet boundaries across rekeys.
func TestPacketConnRekey(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var pcs []*packetConn
	var mu sync.Mutex
	ts := startTestShareHook(t, dir, nil, func(s *Server) {
		s.config.RekeyThreshold = 64 << 10
		s.testHookPacketConn = func(pc *packetConn) { mu.Lock(); pcs = append(pcs, pc); mu.Unlock() }
	})
	c, err := ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
		User:            "someone",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(ts.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
		Config:          ssh.Config{RekeyThreshold: 100 << 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	got, err := readAllRemote(sc, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, differ from the file's %d", len(got), len(data))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pcs) != 1 || pcs[0].state.Load() != stateGCM {
		t.Fatalf("server connections %d, want 1 still framing AES-GCM packets (not passing through)", len(pcs))
	}
}
