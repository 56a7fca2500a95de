//go:build linux

package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Packet captures for the tests that prove what crosses a namespace's
// interfaces: tcpdump on every interface of a namespace, written as a
// classic pcap file that the test searches byte for byte.

// Capture is tcpdump running in a namespace.
type Capture struct {
	File string
	ns   string
	proc *Process
}

// StartCapture starts tcpdump on all interfaces of namespace ns (full
// packets, written as they arrive, a 32 MiB kernel buffer so a burst is
// not dropped) and waits until it captures. It is killed by PID at
// cleanup if Stop did not end it. Stop it before unmounting FUSE mounts
// made after it started: `ip netns exec` gives it its own copy of them,
// and a FUSE server's unmount waits until that copy is gone.
func StartCapture(t testing.TB, ns string) *Capture {
	t.Helper()
	Require(t, "tcpdump")
	c := &Capture{File: filepath.Join(t.TempDir(), "capture.pcap"), ns: ns}
	// -Z root: Debian's tcpdump otherwise opens the file as user tcpdump,
	// which may not write into the test's private temporary directory.
	c.proc = StartIn(t, ns, nil, "tcpdump", "-i", "any", "-n", "-s", "0", "-U", "-B", "32768", "-Z", "root", "-w", c.File)
	c.proc.WaitOutput(t, "listening on", 20*time.Second)
	return c
}

// settle waits until the capture file has stopped growing for a second
// (at most 20 s): on a busy machine tcpdump lags behind the traffic, and
// packets still in its kernel buffer at SIGINT are neither written nor
// counted as dropped.
func (c *Capture) settle() {
	var last int64 = -1
	stable := time.Now()
	// Past 20 s the capture is stopped anyway; Stop checks what it lost.
	_ = Poll(20*time.Second, 100*time.Millisecond, func() bool {
		fi, err := os.Stat(c.File)
		if err != nil {
			return false
		}
		if fi.Size() != last {
			last, stable = fi.Size(), time.Now()
			return false
		}
		return time.Since(stable) >= time.Second
	})
}

var tcpdumpDropped = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

// Stop ends tcpdump with SIGINT (it then flushes the file), waits, and
// returns the capture. A packet the kernel dropped fails the test: a
// search in an incomplete capture proves nothing.
func (c *Capture) Stop(t testing.TB) *Pcap {
	t.Helper()
	c.settle()
	if err := c.proc.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("stop tcpdump (pid %d) in %s: %v", c.proc.Cmd.Process.Pid, c.ns, err)
	}
	if _, ok := c.proc.Wait(20 * time.Second); !ok {
		t.Fatalf("tcpdump (pid %d) in %s still running 20 s after SIGINT", c.proc.Cmd.Process.Pid, c.ns)
	}
	out := c.proc.Output.String()
	m := tcpdumpDropped.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("tcpdump in %s did not say how many packets the kernel dropped:\n%s", c.ns, out)
	}
	if n, _ := strconv.Atoi(m[1]); n != 0 {
		t.Fatalf("tcpdump in %s: the kernel dropped %d packets; the capture is incomplete:\n%s", c.ns, n, out)
	}
	p, err := ReadPcap(c.File)
	if err != nil {
		t.Fatalf("capture in %s: %v", c.ns, err)
	}
	return p
}

// Pcap is a read capture: its packets' bytes as captured, one after the
// other.
type Pcap struct {
	Packets int
	Bytes   int64 // captured bytes of all packets (headers included)
	Data    []byte
}

// ReadPcap reads a classic pcap file (microsecond or nanosecond
// timestamps, either byte order).
func ReadPcap(path string) (*Pcap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("capture %s: %d bytes, shorter than a pcap header", path, len(b))
	}
	var bo binary.ByteOrder
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("capture %s: magic %#x is not a classic pcap file", path, m)
	}
	p := &Pcap{}
	var data bytes.Buffer
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			return nil, fmt.Errorf("capture %s: truncated record header at byte %d", path, off)
		}
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			return nil, fmt.Errorf("capture %s: truncated packet at byte %d", path, off)
		}
		data.Write(b[off : off+n])
		p.Packets++
		p.Bytes += int64(n)
		off += n
	}
	p.Data = data.Bytes()
	return p, nil
}

// Windows returns n slices of size bytes spread evenly over b, first and
// last included: what to look for in a capture to tell whether b crossed
// in plaintext.
func Windows(b []byte, n, size int) [][]byte {
	if n < 2 || size > len(b) {
		return [][]byte{b[:min(size, len(b))]}
	}
	ws := make([][]byte, n)
	step := (len(b) - size) / (n - 1)
	for i := range ws {
		ws[i] = b[i*step : i*step+size]
	}
	return ws
}

// Found counts the windows that occur in the capture's packets.
func (p *Pcap) Found(windows [][]byte) int {
	n := 0
	for _, w := range windows {
		if bytes.Contains(p.Data, w) {
			n++
		}
	}
	return n
}
