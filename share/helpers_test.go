//go:build linux

package share

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/loglimit"
	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// secretText and secretName are policytest's marks of the outside.
const (
	secretText = policytest.SecretText
	secretName = policytest.SecretName
)

// fixture is policytest's tree of a share next to an outside directory,
// with the field names share's tests use.
type fixture struct {
	base    string // parent of share and outside
	share   string // the shared directory
	outside string // sibling directory the client must never reach
	secret  string // absolute path of the secret file
}

// newFixture builds policytest.NewTree.
func newFixture(t testing.TB, hostile bool) *fixture {
	t.Helper()
	tr := policytest.NewTree(t, hostile)
	return &fixture{base: tr.Base, share: tr.Share, outside: tr.Outside, secret: tr.Secret}
}

// treeHash describes everything a write could change below dir: names,
// types, modes, sizes, mtimes, atimes, link targets and contents. Two equal
// hashes mean nothing changed on disk. It reads with O_NOATIME, so hashing
// changes nothing either.
func treeHash(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	walkNoAtime(t, dir, func(p string, st *syscall.Stat_t) {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("hash tree: %v", err)
		}
		line := fmt.Sprintf("%s %v %d mtime=%d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode()&fs.ModeSymlink == 0 {
			// A symlink's atime changes whenever anyone reads or follows
			// it (readlink has no O_NOATIME); that is the one atime the
			// server cannot avoid, so it is left out.
			line += fmt.Sprintf(" atime=%d", st.Atim.Nano())
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := readNoAtime(p)
			if err != nil {
				t.Fatalf("hash tree: %v", err)
			}
			sum := sha256.Sum256(b)
			line += " sha256=" + hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// atimes records the access times of regular files and directories.
func atimes(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	walkNoAtime(t, dir, func(p string, st *syscall.Stat_t) {
		if m := st.Mode & syscall.S_IFMT; m == syscall.S_IFREG || m == syscall.S_IFDIR {
			out[p] = st.Atim.Nano()
		}
	})
	return out
}

// walkNoAtime calls fn for dir and everything below it (not following
// symlinks), listing directories with O_NOATIME so the walk itself leaves
// access times alone. fn sees each directory's stat from before its
// listing.
func walkNoAtime(t testing.TB, dir string, fn func(p string, st *syscall.Stat_t)) {
	t.Helper()
	var walk func(p string)
	walk = func(p string) {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		fn(p, &st)
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return
		}
		fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOATIME|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		f := os.NewFile(uintptr(fd), p)
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		sort.Strings(names)
		for _, n := range names {
			walk(filepath.Join(p, n))
		}
	}
	walk(dir)
}

// testShare is a Server on 127.0.0.1 serving a fixture, with a client key
// in its authorized keys and a known_hosts file pinning its host key.
type testShare struct {
	srv        *Server
	port       int
	addr       string
	client     testenv.Key
	knownHosts string
	logs       *testenv.SyncBuffer
	pipe       *pipeListener // set when served in memory (startPipeShare)
	cancel     context.CancelFunc
	done       chan error
}

// testLogWindow is the log limiter's window in the share's tests.
const testLogWindow = 2 * time.Second

// startTestShare serves dir. mod may change the options before New.
func startTestShare(t testing.TB, dir string, mod func(*Options)) *testShare {
	t.Helper()
	return startTestShareHook(t, dir, mod, nil)
}

// startTestShareHook is startTestShare with a hook that runs on the
// Server before Serve (to set test hooks).
func startTestShareHook(t testing.TB, dir string, mod func(*Options), hook func(*Server)) *testShare {
	t.Helper()
	return startTestShareOn(t, nil, dir, mod, hook)
}

// startTestShareOn is startTestShareHook serving ln (nil: a TCP socket on
// 127.0.0.1).
func startTestShareOn(t testing.TB, ln net.Listener, dir string, mod func(*Options), hook func(*Server)) *testShare {
	t.Helper()
	tmp := t.TempDir()
	ts := &testShare{client: testenv.NewKey(t, tmp, "client"), logs: &testenv.SyncBuffer{}}
	// The program's log limiter, as cmd installs it, with a short window
	// so tests see its summaries.
	lim := loglimit.New(loglimit.DefaultBurst, testLogWindow)
	t.Cleanup(lim.Close)
	ak := filepath.Join(tmp, "authorized_keys")
	if err := os.WriteFile(ak, []byte(ts.client.Public()+" tester\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Dir:                dir,
		Listen:             "127.0.0.1:0",
		AuthorizedKeysFile: ak,
		Logger:             slog.New(lim.Handler(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.ln = ln
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ts.srv = srv
	if hook != nil {
		hook(srv)
	}
	ts.port = srv.Port()
	ts.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ts.port))
	ts.knownHosts = filepath.Join(tmp, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", ts.port, ssh.MarshalAuthorizedKey(srv.HostKey()))
	if err := os.WriteFile(ts.knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		if t.Failed() {
			log := ts.logs.String()
			if len(log) > 4000 {
				log = "…" + log[len(log)-4000:]
			}
			t.Logf("server log (tail):\n%s", log)
		}
	})
	return ts
}

// sshArgs are the OpenSSH client options for this share: our key only,
// host key pinned, no prompts.
func (ts *testShare) sshArgs() []string {
	return []string{
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityFile=" + ts.client.Path,
		"-o", "UserKnownHostsFile=" + ts.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=10",
	}
}

// sftpBatch runs OpenSSH `sftp -b` with batch, in workdir, and returns its
// combined output and error (non-nil when a command not prefixed with "-"
// failed).
func (ts *testShare) sftpBatch(t testing.TB, workdir, batch string, extra ...string) (string, error) {
	t.Helper()
	sftpPath := testenv.Require(t, "sftp")[0]
	bf := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(bf, []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(ts.sshArgs(), extra...)
	args = append(args, "-b", bf, "-P", strconv.Itoa(ts.port), "anyone@127.0.0.1")
	cmd := exec.CommandContext(ctx, sftpPath, args...)
	cmd.Dir = workdir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dial logs in with the client key (or the given auth) over x/crypto/ssh.
func (ts *testShare) dial(t testing.TB, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	if len(auth) == 0 {
		auth = []ssh.AuthMethod{ssh.PublicKeys(ts.client.Signer)}
	}
	if ts.pipe != nil {
		return ts.dialPipe(auth)
	}
	return ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
		User:            "someone",
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
}

// dialFrom is dial from a local address such as 127.0.0.2, so that a
// test's attacker and its real client are different sources.
func (ts *testShare) dialFrom(t testing.TB, local string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	if len(auth) == 0 {
		auth = []ssh.AuthMethod{ssh.PublicKeys(ts.client.Signer)}
	}
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            "someone",
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewClientConn(c, ts.addr, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// sftpClient returns a pkg/sftp client over a real SSH connection.
func (ts *testShare) sftpClient(t testing.TB) *sftp.Client {
	t.Helper()
	c, err := ts.dial(t)
	if err != nil {
		t.Fatalf("ssh login: %v", err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		c.Close()
		t.Fatalf("sftp session: %v", err)
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	return sc
}

// readAllRemote opens and reads a file through the client.
func readAllRemote(c *sftp.Client, p string) ([]byte, error) {
	f, err := c.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, f)
	return buf.Bytes(), err
}

// readNoAtime reads a file without updating its access time (as its owner
// or root; otherwise it falls back to a plain read), so hashing a tree does
// not change what the next hash sees.
func readNoAtime(p string) ([]byte, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOATIME|syscall.O_CLOEXEC, 0)
	if err != nil {
		return os.ReadFile(p)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}
