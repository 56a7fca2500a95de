//go:build linux

package limits

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// channel is a session's channel: what the client sends comes through a
// pipe, replies go to reply.
type channel struct {
	*io.PipeReader
	reply io.Writer
}

func (c channel) Write(p []byte) (int, error) { return c.reply.Write(p) }

// session is a Flow with its client end and a reader standing in for
// pkg/sftp, which reads one whole packet at a time.
type session struct {
	*Flow
	client *io.PipeWriter
	read   atomic.Int64 // packets the reader got
	done   chan error
}

func newSession(t *testing.T, r *Requests, reply io.Writer, onOverflow func()) *session {
	pr, pw := io.Pipe()
	s := &session{Flow: r.NewFlow(channel{pr, reply}, onOverflow), client: pw, done: make(chan error, 1)}
	t.Cleanup(func() { s.Close(); pw.Close(); <-s.done })
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(s, buf[:4]); err != nil {
				s.done <- err
				return
			}
			n := binary.BigEndian.Uint32(buf[:4])
			if _, err := io.ReadFull(s, buf[:n]); err != nil {
				s.done <- err
				return
			}
			s.read.Add(1)
		}
	}()
	return s
}

// packets is n SFTP packets of 5 bytes each.
func packets(n int) []byte {
	var b []byte
	for range n {
		b = append(b, 0, 0, 0, 5, 'p', 'k', 'e', 't', '!')
	}
	return b
}

// send writes b as the client, without waiting for the session to take
// it.
func (s *session) send(b []byte) { go func() { _, _ = s.client.Write(b) }() }

// TestFlowCapsRequests: each session may have one request in flight and
// takes more from its connection's budget (MaxRequestsPerConn), keeping
// them until it is released; a reply frees a slot for its session.
func TestFlowCapsRequests(t *testing.T) {
	g := newGate(t, Options{MaxRequestsPerConn: 2})
	r := g.NewRequests()
	a, b := newSession(t, r, io.Discard, nil), newSession(t, r, io.Discard, nil)

	a.send(packets(5))
	testenv.WaitFor(t, 5*time.Second, "the first session to take its slot and the budget", func() bool { return a.read.Load() == 3 })
	b.send(packets(2))
	testenv.WaitFor(t, 5*time.Second, "the second session's own slot", func() bool { return b.read.Load() == 1 })
	if n := r.InFlight(); n != 4 {
		t.Errorf("in flight: %d; want 4", n)
	}
	if _, err := a.Write(packets(1)); err != nil { // a reply
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the first session's next request after a reply", func() bool { return a.read.Load() == 4 })
	if n := r.InFlight(); n != 4 {
		t.Errorf("in flight after a reply and a request: %d; want 4", n)
	}
	a.Close()
	if err := <-a.done; err != io.EOF {
		t.Errorf("reading a closed session: %v; want EOF", err)
	}
	a.done <- nil // for the cleanup
	if !a.Gone() {
		t.Error("a closed session is not gone")
	}
	a.Release()
	// A waiting session looks at the budget again when data arrives or
	// a reply goes out.
	b.send(packets(2))
	testenv.WaitFor(t, 5*time.Second, "the second session's requests with the budget given back", func() bool { return b.read.Load() == 3 })
	if n := r.InFlight(); n != 3 {
		t.Errorf("in flight after the first session ended: %d; want 3", n)
	}
	if b.read.Load() != 3 || a.read.Load() != 4 {
		t.Errorf("read %d and %d requests; want 4 and 3", a.read.Load(), b.read.Load())
	}
	if time.Since(r.Last()) > time.Minute {
		t.Errorf("last request at %v", r.Last())
	}
}

// TestFlowQueueBounded: a session whose client queues more than MaxQueued
// bytes behind the cap is closed, and says so.
func TestFlowQueueBounded(t *testing.T) {
	g := newGate(t, Options{MaxRequestsPerConn: 1})
	r := g.NewRequests()
	var overflowed atomic.Bool
	s := newSession(t, r, io.Discard, func() { overflowed.Store(true) })
	// One request the reader takes and never answers, then queued ones.
	s.send(append(packets(2), make([]byte, MaxQueued+ReadChunk)...))
	testenv.WaitFor(t, 5*time.Second, "the session to be closed", s.Gone)
	if !overflowed.Load() {
		t.Error("overflow not reported")
	}
	if err := <-s.done; err != io.EOF {
		t.Errorf("reading the closed session: %v; want EOF", err)
	}
	s.done <- nil
}

// TestFlowGoneOnWriteError: a reply that cannot be sent marks the session
// gone (its queued requests are skipped).
func TestFlowGoneOnWriteError(t *testing.T) {
	g := newGate(t, Options{})
	s := newSession(t, g.NewRequests(), failWriter{}, nil)
	if _, err := s.Write(packets(1)); err == nil {
		t.Fatal("no error")
	}
	if !s.Gone() {
		t.Error("not gone after a failed reply")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("channel closed") }
