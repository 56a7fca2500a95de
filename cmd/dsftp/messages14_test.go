//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// jsonLogs parses the --log-json lines of out (other lines skipped).
func jsonLogs(out string) []map[string]any {
	var ls []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] != nil {
			ls = append(ls, m)
		}
	}
	return ls
}

// logged returns the log lines whose message contains msg.
func logged(ls []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range ls {
		if s, _ := l["msg"].(string); strings.Contains(s, msg) {
			out = append(out, l)
		}
	}
	return out
}

// TestSelfDialSilent: a peer address that is this process's own share
// (in a member's home, another member's LAN address may be this machine)
// is recognised by its host key: the error says so instead of "host key
// mismatch", and the share logs no refused connection and penalises no
// one for it.
func TestSelfDialSilent(t *testing.T) {
	testenv.RequireFUSE(t)
	mnt := mountDir(t)
	port := testenv.FreePort(t)
	other := testenv.NewKey(t, t.TempDir(), "other") // the fingerprint c really has
	p := testenv.Start(t, nil, testenv.Binary(t), "mount", mnt, "--share", t.TempDir(), "--discovery", "off",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--log-json", "--timeout", "5s",
		"--peer", "c=sftp://dsftp@127.0.0.1:"+strconv.Itoa(port)+"/?fingerprint="+other.Fingerprint())
	p.WaitOutput(t, `"msg":"mounted"`, 60*time.Second)
	for range 3 {
		_, _ = os.ReadDir(filepath.Join(mnt, "c"))
		time.Sleep(600 * time.Millisecond) // past the dial backoff
	}
	stop(t, p, mnt, syscall.SIGTERM)
	out := p.Output.String()
	ls := jsonLogs(out)
	for _, bad := range []string{"closed without login", "address penalised"} {
		if n := len(logged(ls, bad)); n > 0 {
			t.Errorf("the share logged %q %d times for our own dials", bad, n)
		}
	}
	if strings.Contains(out, "host key mismatch") || !strings.Contains(out, "answers with our own host key") {
		t.Errorf("dialing our own address:\n%s\nwant it named as our own share, not a host key mismatch", out)
	}
}

// TestPeerIdleCloseIsInfo: a peer's share closing our connection after
// its --idle-timeout (nothing was in use) is logged at info, not as a
// WARN "closing connection to peer … connection lost".
func TestPeerIdleCloseIsInfo(t *testing.T) {
	testenv.RequireFUSE(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "shared")
	writeFile(t, dir, "a.txt", "a\n")
	key := testenv.NewKey(t, tmp, "client")
	port := strconv.Itoa(testenv.FreePort(t))
	sh := startShareBinary(t, dir, "--listen", "127.0.0.1:"+port, "--authorized-keys", key.Path+".pub", "--discovery", "off", "--idle-timeout", "1s")
	fp := regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}`).FindString(sh.Output.String())
	mnt := mountDir(t)
	p := testenv.Start(t, nil, testenv.Binary(t), "mount", mnt, "--no-share", "--discovery", "off", "--log-json",
		"--identity", key.Path, "--peer", "p=sftp://x@127.0.0.1:"+port+"/?fingerprint="+fp)
	testenv.WaitFor(t, 30*time.Second, "the peer's file", func() bool {
		b, err := os.ReadFile(filepath.Join(mnt, "p", "a.txt"))
		return err == nil && string(b) == "a\n"
	})
	testenv.WaitFor(t, 20*time.Second, "the peer to close the idle connection", func() bool {
		return strings.Contains(p.Output.String(), "peer closed a connection with nothing in use")
	})
	stop(t, p, mnt, syscall.SIGTERM)
	ls := jsonLogs(p.Output.String())
	for _, l := range logged(ls, "peer closed a connection with nothing in use") {
		if l["level"] != "INFO" {
			t.Errorf("logged at %v: %v", l["level"], l)
		}
	}
	if w := logged(ls, "closing connection to peer"); len(w) > 0 {
		t.Errorf("an expected close logged as %v", w)
	}
}
