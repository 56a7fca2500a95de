package loglimit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTest is a limiter whose window never ends by itself (the test
// flushes), writing text lines to a buffer.
func newTest(t *testing.T) (*Limiter, *slog.Logger, *syncBuffer) {
	var buf syncBuffer
	l := New(DefaultBurst, time.Hour)
	t.Cleanup(l.Close)
	return l, slog.New(l.Handler(slog.NewTextHandler(&buf, nil))), &buf
}

// TestSummary: a flood of one line from one source shows its first
// lines, then one summary with the count; an empty window writes nothing.
func TestSummary(t *testing.T) {
	l, log, buf := newTest(t)
	for i := range 12345 {
		log.Warn("connection refused: too many", "remote", fmt.Sprintf("1.2.3.4:%d", 1000+i%60000), "err", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != DefaultBurst {
		t.Errorf("%d lines written in full; want %d:\n%s", n, DefaultBurst, buf)
	}
	l.Flush()
	want := `msg="connection refused: too many (12,340 more like this in the last 1h0m0s)" remote=1.2.3.4 suppressed=12340`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, buf)
	}
	before := buf.String()
	l.Flush()
	if buf.String() != before {
		t.Errorf("an empty window wrote:\n%s", buf.String()[len(before):])
	}
	log.Warn("connection refused: too many", "remote", "1.2.3.4:1")
	if buf.String() == before {
		t.Error("the new window held back its first line")
	}
}

// TestIdentities: each source, member key and reason has its own first
// lines, also when the identity comes from the logger's With; the port
// of an address does not count.
func TestIdentities(t *testing.T) {
	_, log, buf := newTest(t)
	for range 100 {
		log.Info("refused a relay", "remote", "10.0.0.1:5", "key", "SHA256:a")
	}
	flooded := strings.Count(buf.String(), "\n")
	log.Info("refused a relay", "remote", "10.0.0.1:6", "key", "SHA256:b")
	log.With("remote", "10.0.0.2:7").Info("refused a relay", "key", "SHA256:a")
	log.Info("refused a relay", "key", "SHA256:a", "remote", "10.0.0.1:8", "reason", "other")
	if got := strings.Count(buf.String(), "\n") - flooded; got != 3 {
		t.Errorf("%d of 3 lines of other identities written after a flood of one:\n%s", got, buf)
	}
	if flooded != DefaultBurst {
		t.Errorf("%d lines of the flood written; want %d", flooded, DefaultBurst)
	}
	// The same identity through With, in another order: held back.
	log.With("key", "SHA256:a").With("remote", "10.0.0.1:9").Info("refused a relay")
	if got := strings.Count(buf.String(), "\n") - flooded; got != 3 {
		t.Errorf("the flooded identity, given through With, was written:\n%s", buf)
	}
}

// TestManyIdentities: a flood from ever new sources writes a bounded
// number of lines, and the table stays within its bound.
func TestManyIdentities(t *testing.T) {
	l, log, buf := newTest(t)
	const n = 3 * MaxKeys
	for i := range n {
		log.Warn("connection refused", "remote", fmt.Sprintf("10.%d.%d.%d:22", i>>16, i>>8&255, i&255))
	}
	for i := range n {
		log.Warn(fmt.Sprintf("message %d", i))
	}
	lines := strings.Count(buf.String(), "\n")
	if max := (maxPerMessage+1)*DefaultBurst + MaxKeys*DefaultBurst + maxOverflow*DefaultBurst + DefaultBurst; lines > max {
		t.Errorf("%d lines for %d sources and %d messages; want at most %d", lines, n, n, max)
	}
	l.mu.Lock()
	keys := len(l.m)
	l.mu.Unlock()
	if keys > MaxKeys+maxOverflow+1 {
		t.Errorf("%d keys in the table; bound is %d", keys, MaxKeys+maxOverflow+1)
	}
	before := buf.String()
	l.Flush()
	summary := buf.String()[len(before):]
	if !strings.Contains(summary, `msg="connection refused (`) || !strings.Contains(summary, "from=others") {
		t.Errorf("no summary of the sources beyond the bound:\n%s", summary)
	}
	if !strings.Contains(summary, "log lines of many kinds") {
		t.Errorf("no summary of the messages beyond the bound:\n%s", summary)
	}
}

// TestClose: Close writes the window's summaries.
func TestClose(t *testing.T) {
	var buf syncBuffer
	l := New(1, time.Hour)
	log := slog.New(l.Handler(slog.NewTextHandler(&buf, nil)))
	log.Info("x")
	log.Info("x")
	l.Close()
	if !strings.Contains(buf.String(), "x (1 more like this in the last 1h0m0s)") {
		t.Errorf("Close did not sum up the window:\n%s", buf.String())
	}
	log.Info("x")
	if strings.Count(buf.String(), "msg=x\n") != 2 {
		t.Errorf("a line after Close was held back:\n%s", buf.String())
	}
}

// TestGroups: attributes inside a group are not identity.
func TestGroups(t *testing.T) {
	_, log, buf := newTest(t)
	g := log.WithGroup("g")
	for i := range 10 {
		g.Info("m", "remote", fmt.Sprintf("10.0.0.%d:1", i))
	}
	if n := strings.Count(buf.String(), "\n"); n != DefaultBurst {
		t.Errorf("%d lines; grouped attributes counted as identity", n)
	}
}

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDebugUnlimited: debug lines, written only when asked for, are all
// written.
func TestDebugUnlimited(t *testing.T) {
	var buf syncBuffer
	l := New(DefaultBurst, time.Hour)
	t.Cleanup(l.Close)
	log := slog.New(l.Handler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for range 100 {
		log.Debug("prefetch hit", "path", "d/f")
	}
	if n := strings.Count(buf.String(), "\n"); n != 100 {
		t.Errorf("%d of 100 debug lines written", n)
	}
}
