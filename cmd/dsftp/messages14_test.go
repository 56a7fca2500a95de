//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// logged lists the node's records whose message contains msg.
func logged(n *testenv.Node, msg string) []testenv.Record {
	return n.Where(func(r testenv.Record) bool { return strings.Contains(r.Msg, msg) })
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
	// At debug level every failed dial is logged, not only the first.
	p := testenv.StartNode(t, testenv.NodeOptions{}, "mount", mnt, "--share", t.TempDir(), "--discovery", "off",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--log-level", "debug", "--timeout", "5s",
		"--peer", "c=sftp://dsftp@127.0.0.1:"+strconv.Itoa(port)+"/?fingerprint="+other.Fingerprint())
	p.WaitRecord(t, 60*time.Second, "mounted")
	for i := range 3 {
		// A read within the dial backoff fails without dialing.
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("dial %d of our own address", i+1), func() bool {
			_, _ = os.ReadDir(filepath.Join(mnt, "c"))
			return p.Count("cannot reach peer") > i
		})
	}
	stop(t, p, mnt, syscall.SIGTERM)
	for _, bad := range []string{"closed without login", "address penalised"} {
		if n := len(logged(p, bad)); n > 0 {
			t.Errorf("the share logged %q %d times for our own dials", bad, n)
		}
	}
	ownKey := p.Where(func(r testenv.Record) bool { return strings.Contains(r.Str("err"), "answers with our own host key") })
	mismatch := p.Where(func(r testenv.Record) bool { return strings.Contains(r.Str("err"), "host key mismatch") })
	if len(mismatch) != 0 || strings.Contains(p.Text(), "host key mismatch") || len(ownKey) == 0 {
		t.Errorf("dialing our own address:\n%s\nwant it named as our own share, not a host key mismatch", p.Output)
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
	_, fp := sh.ShareReady(t)
	mnt := mountDir(t)
	p := testenv.StartNode(t, testenv.NodeOptions{}, "mount", mnt, "--no-share", "--discovery", "off",
		"--identity", key.Path, "--peer", "p=sftp://x@127.0.0.1:"+port+"/?fingerprint="+fp)
	testenv.WaitFor(t, 30*time.Second, "the peer's file", func() bool {
		b, err := os.ReadFile(filepath.Join(mnt, "p", "a.txt"))
		return err == nil && string(b) == "a\n"
	})
	const idleClose = "peer closed a connection with nothing in use (its idle timeout, or it stopped)"
	p.WaitRecord(t, 20*time.Second, idleClose, "peer", "p")
	stop(t, p, mnt, syscall.SIGTERM)
	for _, l := range p.Records(idleClose) {
		if l.Level != "INFO" {
			t.Errorf("logged at %v: %v", l.Level, l)
		}
	}
	if w := logged(p, "closing connection to peer"); len(w) > 0 {
		t.Errorf("an expected close logged as %v", w)
	}
}
