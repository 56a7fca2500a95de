//go:build linux

package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NodeOptions say where and how a dsftp node runs.
type NodeOptions struct {
	Env []string // added to the test's environment (see Start)
	Dir string   // working directory; "" is the test's
	// NS runs the node in that network namespace. With ip netns exec it
	// gets a mount namespace of its own too, so its FUSE mounts are not
	// seen by the test; NetOnly (nsenter --net) keeps the test's.
	NS      string
	NetOnly bool
	Binary  string // the dsftp executable; "" is Binary(t)
	// Wrap is a command prefix the node runs under, such as
	// prlimit --nofile=40:40 --; it must exec the node, so that the
	// process's PID is the node's.
	Wrap []string
}

// Node is one dsftp process of a test. It always runs with --log-json, so
// a test reads its state from log records (msg, level and attributes) and
// from --json outputs on stdout, never from the human log text. The
// human text (the banner, error lines on stderr) stays in Text for the
// tests whose subject it is.
type Node struct {
	*Process
	stdout     SyncBuffer
	log        recordLog
	outW, errW *lineWriter
}

// Record is one JSON log line of a node.
type Record struct {
	Level string
	Msg   string
	Attrs map[string]any // every key but time, level and msg
}

// Str is attribute key as text ("" when absent): strings as they are,
// numbers in decimal, anything else as JSON.
func (r Record) Str(key string) string {
	switch v := r.Attrs[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Int is a numeric attribute (0 when absent or not a number).
func (r Record) Int(key string) int64 {
	f, _ := r.Attrs[key].(float64)
	return int64(f)
}

// Duration is a time.Duration attribute, which slog writes as nanoseconds.
func (r Record) Duration(key string) time.Duration { return time.Duration(r.Int(key)) }

// Strs is a list attribute as text.
func (r Record) Strs(key string) []string {
	l, _ := r.Attrs[key].([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, Record{Attrs: map[string]any{"v": v}}.Str("v"))
	}
	return out
}

// Has reports whether the record has every key.
func (r Record) Has(keys ...string) bool {
	for _, k := range keys {
		if _, ok := r.Attrs[k]; !ok {
			return false
		}
	}
	return true
}

// matches reports whether the record is msg ("" for any) with each
// key, value pair of kv (values compared as Str).
func (r Record) matches(msg string, kv []string) bool {
	if msg != "" && r.Msg != msg {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if _, ok := r.Attrs[kv[i]]; !ok || r.Str(kv[i]) != kv[i+1] {
			return false
		}
	}
	return true
}

// StartNode starts `dsftp args...` with --log-json and kills it by PID at
// the end of the test if it still runs.
func StartNode(t testing.TB, o NodeOptions, args ...string) *Node {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("StartNode: no command")
	}
	bin := o.Binary
	if bin == "" {
		bin = Binary(t)
	}
	// After the command: a `--` later in args ends the flags.
	argv := append([]string{bin, args[0], "--log-json"}, args[1:]...)
	argv = append(slices.Clip(o.Wrap), argv...)
	switch {
	case o.NS != "" && o.NetOnly:
		argv = append([]string{Require(t, "nsenter")[0], "--net=/run/netns/" + o.NS}, argv...)
	case o.NS != "":
		argv = append([]string{"ip", "netns", "exec", o.NS}, argv...)
	}
	n := &Node{}
	n.log.human = &SyncBuffer{}
	n.outW = &lineWriter{w: func(l []byte) { n.stdout.Write(l); n.log.human.Write(l) }}
	n.errW = &lineWriter{w: n.log.line}
	n.Process = start(t, o.Env, o.Dir, n.outW, n.errW, argv[0], argv[1:]...)
	return n
}

// RunNode runs `dsftp args...` (see StartNode) to its end, at most
// timeout, and returns it; ExitCode says how it ended.
func RunNode(t testing.TB, o NodeOptions, timeout time.Duration, args ...string) *Node {
	t.Helper()
	n := StartNode(t, o, args...)
	if _, ok := n.Wait(timeout); !ok {
		t.Fatalf("dsftp %s did not finish within %v:\n%s", strings.Join(args, " "), timeout, n.Output)
	}
	return n
}

// ExitCode is the exit status of a node that has ended, -1 while it runs
// or when a signal ended it.
func (n *Node) ExitCode() int {
	select {
	case <-n.Done():
		return n.Cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stdout is what the node wrote to stdout: a --json output, the banner.
func (n *Node) Stdout() string {
	n.flush()
	return n.stdout.String()
}

// WaitStdout waits until the node's stdout holds line (a whole line),
// and returns what it wrote so far. Its log records (stderr) can arrive
// before what it printed at the same moment.
func (n *Node) WaitStdout(t testing.TB, timeout time.Duration, line *regexp.Regexp) string {
	t.Helper()
	var out string
	WaitFor(t, timeout, "stdout to show "+line.String(), func() bool {
		out = n.Stdout()
		return line.MatchString(out)
	})
	return out
}

// Text is the node's human output: stdout and the stderr lines that are
// not JSON log records, in order.
func (n *Node) Text() string {
	n.flush()
	return n.log.human.String()
}

// flush passes on the last lines of a node that has ended, if they lack
// a newline.
func (n *Node) flush() {
	select {
	case <-n.Done():
		n.outW.flush()
		n.errW.flush()
	default:
	}
}

// Records lists the records with message msg ("" for any) and the
// attribute values of kv (key, value, key, value…), in order.
func (n *Node) Records(msg string, kv ...string) []Record {
	return n.log.filter(func(r Record) bool { return r.matches(msg, kv) })
}

// Where lists the records for which keep holds, in order.
func (n *Node) Where(keep func(Record) bool) []Record { return n.log.filter(keep) }

// Count is len(Records(msg, kv...)).
func (n *Node) Count(msg string, kv ...string) int { return len(n.Records(msg, kv...)) }

// WaitRecord waits up to timeout for a record like Records(msg, kv...)
// and returns the first. The test fails if the node exits before.
func (n *Node) WaitRecord(t testing.TB, timeout time.Duration, msg string, kv ...string) Record {
	t.Helper()
	what := fmt.Sprintf("log record %q %v", msg, kv)
	return n.WaitWhere(t, timeout, what, func(r Record) bool { return r.matches(msg, kv) })
}

// WaitWhere waits up to timeout for a record for which keep holds and
// returns the first. The test fails if the node exits before.
func (n *Node) WaitWhere(t testing.TB, timeout time.Duration, what string, keep func(Record) bool) Record {
	t.Helper()
	var got Record
	WaitFor(t, timeout, what+" from dsftp", func() bool {
		exited := false
		select {
		case <-n.Done():
			exited = true
		default:
		}
		if l := n.log.filter(keep); len(l) > 0 {
			got = l[0]
			return true
		}
		if exited {
			t.Fatalf("dsftp exited (%v) before logging %s:\n%s", n.err, what, n.Output)
		}
		return false
	})
	return got
}

// ShareReady waits until the node's share listens and returns its port
// and host key fingerprint.
func (n *Node) ShareReady(t testing.TB) (port int, hostKey string) {
	t.Helper()
	r := n.WaitRecord(t, 60*time.Second, "share ready")
	return int(r.Int("port")), r.Str("host_key")
}

// Stop sends sig and waits up to timeout for the node to end; it returns
// the node's exit error and fails the test if it does not end.
func (n *Node) Stop(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	_ = n.Cmd.Process.Signal(sig)
	err, ok := n.Wait(timeout)
	if !ok {
		t.Fatalf("dsftp did not end within %v of %v", timeout, sig)
	}
	return err
}

// recordLog holds a node's parsed records and its human stderr lines.
type recordLog struct {
	mu    sync.Mutex
	recs  []Record
	human *SyncBuffer
}

// line takes one stderr line: a JSON object with a msg is a record,
// anything else is human text.
func (l *recordLog) line(b []byte) {
	var m map[string]any
	if bytes.HasPrefix(b, []byte("{")) && json.Unmarshal(b, &m) == nil {
		if msg, ok := m["msg"].(string); ok {
			level, _ := m["level"].(string)
			delete(m, "time")
			delete(m, "level")
			delete(m, "msg")
			l.mu.Lock()
			l.recs = append(l.recs, Record{Level: level, Msg: msg, Attrs: m})
			l.mu.Unlock()
			return
		}
	}
	l.human.Write(b)
}

func (l *recordLog) filter(keep func(Record) bool) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Record
	for _, r := range l.recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// lineWriter hands w each complete line, newline included: a pipe read
// may end in the middle of one.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	w   func([]byte)
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		lw.w(bytes.Clone(lw.buf[:i+1]))
		lw.buf = lw.buf[i+1:]
	}
}

// flush hands w what is left without a newline.
func (lw *lineWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf) > 0 {
		lw.w(lw.buf)
		lw.buf = nil
	}
}

// ReadRecords parses the JSON log records of a --log-json --log-file
// (lines that are not records are skipped).
func ReadRecords(t testing.TB, path string) []Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read log: %v", err)
	}
	l := recordLog{human: &SyncBuffer{}}
	for line := range bytes.Lines(b) {
		l.line(line)
	}
	return l.filter(func(Record) bool { return true })
}
