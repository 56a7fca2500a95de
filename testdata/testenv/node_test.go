//go:build linux

package testenv

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// A node's stderr arrives in pieces that split lines anywhere: the
// records and the human lines come out whole and in order, and the
// records match on message and attributes.
func TestNodeRecords(t *testing.T) {
	n := &Node{}
	l := &n.log
	l.human = &SyncBuffer{}
	w := &lineWriter{w: l.line}
	in := `{"time":"t","level":"INFO","msg":"share ready","port":2200,"host_key":"SHA256:x"}
dsftp: warning: a line for the user
{"time":"t","level":"WARN","msg":"advertised addresses","addrs":["a:1","b:2"],"took":1500000000}
{"not":"a record"}
last line without newline`
	for i := 0; i < len(in); i += 7 {
		if _, err := w.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	recs := n.Records("")
	if len(recs) != 2 {
		t.Fatalf("parsed %d records, want 2: %+v", len(recs), recs)
	}
	if r := n.Records("share ready", "port", "2200"); len(r) != 1 || r[0].Int("port") != 2200 || r[0].Str("host_key") != "SHA256:x" || r[0].Level != "INFO" {
		t.Errorf("share ready: %+v", r)
	}
	if n.Count("share ready", "port", "2201") != 0 || n.Count("share ready", "nosuch", "") != 0 {
		t.Error("a record matched an attribute value it does not have")
	}
	a := n.Records("advertised addresses")[0]
	if !slices.Equal(a.Strs("addrs"), []string{"a:1", "b:2"}) || a.Duration("took") != 1500*time.Millisecond || !a.Has("addrs", "took") || a.Has("port") {
		t.Errorf("advertised addresses: %+v", a)
	}
	want := "dsftp: warning: a line for the user\n{\"not\":\"a record\"}\nlast line without newline"
	if got := l.human.String(); got != want {
		t.Errorf("human text %q, want %q", got, want)
	}
}

// A node runs under its Wrap prefix, which execs it with the arguments
// StartNode gives, in the same process.
func TestNodeWrap(t *testing.T) {
	echo := Require(t, "echo")[0]
	o := NodeOptions{Binary: echo, Wrap: []string{"sh", "-c", `echo "wrapper $$"; exec "$@"`, "sh"}}
	n := RunNode(t, o, 30*time.Second, "share", "dir")
	want := fmt.Sprintf("wrapper %d\nshare --log-json dir\n", n.Cmd.Process.Pid)
	if n.ExitCode() != 0 || n.Stdout() != want {
		t.Errorf("wrapped node: exit %d, stdout %q; want %q", n.ExitCode(), n.Stdout(), want)
	}
}
