//go:build linux

package share

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestAuthUnknownKeyRefused: a key that is neither in --authorized-keys
// nor known to the authorizer cannot log in, with either client.
func TestAuthUnknownKeyRefused(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	if _, err := ts.dial(t, ssh.PublicKeys(testenv.NewSigner(t))); err == nil {
		t.Fatal("login with an unknown key succeeded")
	}
	// OpenSSH with a key the server does not know.
	other := testenv.NewKey(t, t.TempDir(), "other")
	ts.client = other
	out, err := ts.sftpBatch(t, t.TempDir(), "ls\n")
	if err == nil {
		t.Fatalf("OpenSSH sftp with an unknown key logged in:\n%s", out)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("want 'Permission denied', got:\n%s", out)
	}
	if !strings.Contains(ts.logs.String(), "outcome=refused") {
		t.Errorf("refused login not logged:\n%s", ts.logs.String())
	}
}

// fakeAuthorizer accepts one key, as peers.Registry does for live peers.
type fakeAuthorizer struct {
	key   ssh.PublicKey
	calls atomic.Int64
}

func (a *fakeAuthorizer) AuthorizedKey(k ssh.PublicKey) (string, bool) {
	a.calls.Add(1)
	if string(k.Marshal()) == string(a.key.Marshal()) {
		return "alice", true
	}
	return "", false
}

// TestAuthAuthorizer: keys not in the file are asked of the authorizer.
func TestAuthAuthorizer(t *testing.T) {
	f := newFixture(t, false)
	peer := testenv.NewSigner(t)
	auth := &fakeAuthorizer{key: peer.PublicKey()}
	ts := startTestShare(t, f.share, func(o *Options) { o.Authorizer = auth })
	c, err := ts.dial(t, ssh.PublicKeys(peer))
	if err != nil {
		t.Fatalf("login with a key the authorizer accepts: %v", err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Stat("a.txt"); err != nil {
		t.Errorf("stat after authorizer login: %v", err)
	}
	sc.Close()
	c.Close()
	if auth.calls.Load() == 0 {
		t.Error("authorizer never asked")
	}
	if !strings.Contains(ts.logs.String(), "who=alice") {
		t.Errorf("log does not name the peer:\n%s", ts.logs.String())
	}
}

// TestAuthPassword: passwords are refused unless Options.Password; then
// only the per-run password works, and it never appears in the logs.
func TestAuthPassword(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	if ts.srv.Password() != "" {
		t.Fatal("a password exists without Options.Password")
	}
	if _, err := ts.dial(t, ssh.Password("anything")); err == nil {
		t.Fatal("password login succeeded without --password")
	}

	tp := startTestShare(t, f.share, func(o *Options) { o.Password = true })
	pw := tp.srv.Password()
	if len(pw) < 16 {
		t.Fatalf("password %q too short", pw)
	}
	if _, err := tp.dial(t, ssh.Password(pw+"x")); err == nil {
		t.Fatal("wrong password accepted")
	}
	c, err := tp.dial(t, ssh.Password(pw))
	if err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	c.Close()
	if strings.Contains(tp.logs.String(), pw) {
		t.Fatal("the password appears in the log")
	}
	if !strings.Contains(tp.logs.String(), "method=password") {
		t.Errorf("password logins not logged:\n%s", tp.logs.String())
	}
}

// TestAuthMaxAuthTries: after MaxAuthTries failures the server hangs up,
// however many more the client would try.
func TestAuthMaxAuthTries(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.Password = true; o.MaxAuthTries = 3 })
	var tries atomic.Int64
	cb := ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
		tries.Add(1)
		return "wrong", nil
	}), 20)
	_, err := ts.dial(t, cb)
	if err == nil {
		t.Fatal("login with wrong passwords succeeded")
	}
	if n := tries.Load(); n > 3 {
		t.Errorf("client could try %d passwords; MaxAuthTries is 3", n)
	} else if n == 0 {
		t.Errorf("no password was tried: %v", err)
	}

	// Many wrong keys: the connection is also cut off.
	var keys []ssh.Signer
	for range 12 {
		keys = append(keys, testenv.NewSigner(t))
	}
	if _, err := ts.dial(t, ssh.PublicKeys(keys...)); err == nil {
		t.Fatal("login with unknown keys succeeded")
	}
}

// TestLoginFloodDoesNotStall: while several clients on another address
// fail logins as fast as they can, a legitimate client still logs in and
// reads (the flooding address ends up penalised).
func TestLoginFloodDoesNotStall(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.Password = true })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := ts.dialFrom(t, "127.0.0.2", ssh.Password("guess"), ssh.PublicKeys(testenv.NewSigner(t)))
				if err == nil {
					t.Error("flood login succeeded")
					return
				}
				failures.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testenv.WaitFor(t, 20*time.Second, "the flood to start failing logins", func() bool { return failures.Load() >= 10 })

	for i := range 5 {
		done := make(chan error, 1)
		go func() {
			c, err := ts.dial(t)
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			sc, err := sftp.NewClient(c)
			if err != nil {
				done <- err
				return
			}
			defer sc.Close()
			_, err = sc.ReadDir("/")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("legit login %d during the flood: %v", i, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("legit login %d stalled during the flood", i)
		}
	}
	if !strings.Contains(ts.logs.String(), "address penalised") {
		t.Error("the flooding address was never penalised")
	}
	t.Logf("failed logins during the test: %d", failures.Load())
}

// TestLoginGrace: a connection that never logs in is closed.
func TestLoginGrace(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.LoginGrace = 300 * time.Millisecond })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c) // the server's banner, then EOF
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("silent connection still open after 10 s; login grace is 300 ms")
	}
}

// TestMaxHandles: a connection cannot open more than MaxHandlesPerConn
// files and directories at once; closing one frees a slot.
func TestMaxHandles(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.MaxHandlesPerConn = 3 })
	c := ts.sftpClient(t)
	var open []*sftp.File
	for range 3 {
		fh, err := c.Open("a.txt")
		if err != nil {
			t.Fatalf("open within the cap: %v", err)
		}
		open = append(open, fh)
	}
	if fh, err := c.Open("sub/b.txt"); err == nil {
		fh.Close()
		t.Fatal("fourth open succeeded; cap is 3")
	} else if !strings.Contains(err.Error(), "too many open handles") {
		t.Errorf("fourth open: %v; want 'too many open handles'", err)
	}
	if _, err := c.ReadDir("/"); err == nil {
		t.Error("opendir beyond the cap succeeded")
	}
	open[0].Close()
	fh, err := c.Open("sub/b.txt")
	if err != nil {
		t.Fatalf("open after closing one: %v", err)
	}
	fh.Close()
	for _, fh := range open[1:] {
		fh.Close()
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Errorf("readdir after closing all: %v", err)
	}
}

// TestMaxConns: logins beyond MaxConns are turned away.
func TestMaxConns(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.MaxConns = 1 })
	first := ts.sftpClient(t)
	c, err := ts.dial(t)
	if err == nil {
		_, err = sftp.NewClient(c)
		c.Close()
	}
	if err == nil {
		t.Fatal("second connection got an SFTP session; MaxConns is 1")
	}
	if _, err := first.Stat("a.txt"); err != nil {
		t.Errorf("first connection broken: %v", err)
	}
}

// TestOnlySFTP: no shell, no exec, no port forwarding.
func TestOnlySFTP(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	c, err := ts.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.Output("cat /etc/passwd"); err == nil || len(out) > 0 {
		t.Errorf("exec ran: %q, %v", out, err)
	}
	s.Close()
	if conn, err := c.Dial("tcp", ts.addr); err == nil {
		conn.Close()
		t.Error("direct-tcpip port forwarding was allowed")
	}
}

// TestPanicEndsOnlyThatSession: a panic in a handler fails the request,
// ends that session, and leaves the server and other sessions running.
func TestPanicEndsOnlyThatSession(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShareHook(t, f.share, nil, func(s *Server) {
		s.testHookRead = func(p string) {
			if p == "/sub/b.txt" {
				panic("test panic")
			}
		}
	})
	other := ts.sftpClient(t)
	victim := ts.sftpClient(t)
	if _, err := readAllRemote(victim, "sub/b.txt"); err == nil {
		t.Fatal("read through a panicking handler succeeded")
	}
	testenv.WaitFor(t, 10*time.Second, "the panicking session to close", func() bool {
		_, err := victim.Stat("a.txt")
		return err != nil
	})
	if got, err := readAllRemote(other, "a.txt"); err != nil || string(got) != "hello from the share\n" {
		t.Errorf("other session after the panic: %q, %v", got, err)
	}
	fresh := ts.sftpClient(t)
	if _, err := fresh.Stat("a.txt"); err != nil {
		t.Errorf("new session after the panic: %v", err)
	}
	if !strings.Contains(ts.logs.String(), "panicked") {
		t.Errorf("panic not logged")
	}
}

// TestServeStopsWithSessionsOpen: cancelling Serve's context closes live
// sessions and returns within 2 s.
func TestServeStopsWithSessionsOpen(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	c := ts.sftpClient(t)
	fh, err := c.Open("sub/deeper/random.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	start := time.Now()
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Serve returned %v after cancel; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5 s of cancel")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %v to stop; promised 2 s", d)
	}
	if _, err := c.Stat("a.txt"); err == nil {
		t.Error("session still answers after shutdown")
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

// TestDirErrors: a missing directory or a file is refused by New with a
// message that says what to do.
func TestDirErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(tmp, "missing"), "does not exist"},
		{file, "is not a directory"},
	} {
		_, err := New(Options{Dir: tc.dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dir) {
			t.Errorf("New(%s) = %v; want an error naming it and saying %q", tc.dir, err, tc.want)
		}
	}
}

// TestListenPortTaken: a busy port gives an error naming it and --listen.
func TestListenPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	s, err := New(Options{Dir: t.TempDir(), Listen: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "port "+port+" is already in use") || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("Listen on a taken port = %v", err)
	}
}

// TestHostKeyFile: a missing --host-key file is created (0600, readable by
// ssh-keygen), reused on the next run, and a world-readable one refused.
func TestHostKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host_key")
	s1, err := New(Options{Dir: dir, HostKeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("host key not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %o; want 600", fi.Mode().Perm())
	}
	if s1.HostKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s; want ed25519", s1.HostKey().Type())
	}
	keygen := testenv.Require(t, "ssh-keygen")[0]
	out, err := exec.Command(keygen, "-l", "-f", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), s1.Fingerprint()) {
		t.Errorf("ssh-keygen -l on the created key: %v %s (want %s)", err, out, s1.Fingerprint())
	}
	s2, err := New(Options{Dir: dir, HostKeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if s2.Fingerprint() != s1.Fingerprint() {
		t.Errorf("pinned host key changed between runs")
	}
	// Without --host-key every run has a new key.
	s3, _ := New(Options{Dir: dir})
	s4, _ := New(Options{Dir: dir})
	s3.Close()
	s4.Close()
	if s3.Fingerprint() == s4.Fingerprint() {
		t.Errorf("two runs without --host-key share a key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Dir: dir, HostKeyFile: path})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable host key: %v; want refusal suggesting chmod 600", err)
	}
}

// TestCiphers: the server offers only AES-GCM, so that a default OpenSSH
// client (whose own order puts chacha20 and AES-CTR first) lands on it.
func TestCiphers(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	sshPath := testenv.Require(t, "ssh")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(extra ...string) (string, error) {
		args := append(ts.sshArgs(), extra...)
		args = append(args, "-p", strconv.Itoa(ts.port), "-s", "anyone@127.0.0.1", "sftp")
		cmd := exec.CommandContext(ctx, sshPath, args...)
		cmd.Stdin = strings.NewReader("") // EOF ends the subsystem
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, _ := run("-vv")
	var offered string
	inServer := false
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "peer server KEXINIT proposal") {
			inServer = true
		}
		if inServer && strings.Contains(line, "ciphers stoc:") {
			offered = line
			break
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(offered), "ciphers stoc: aes128-gcm@openssh.com,aes256-gcm@openssh.com") {
		t.Errorf("server cipher offer = %q; want AES-GCM only", offered)
	}
	if !strings.Contains(out, "cipher: aes128-gcm@openssh.com") {
		t.Errorf("a default OpenSSH client did not negotiate aes128-gcm:\n%s", out)
	}
	if strings.Contains(offered, "chacha20") {
		t.Errorf("server offers chacha20: %q", offered)
	}
	out, _ = run("-v", "-o", "Ciphers=aes256-gcm@openssh.com")
	if !strings.Contains(out, "cipher: aes256-gcm@openssh.com") {
		t.Errorf("OpenSSH could not use aes256-gcm:\n%s", out)
	}
	// A client that only speaks chacha20 is turned away.
	out, err := run("-o", "Ciphers=chacha20-poly1305@openssh.com")
	if err == nil || !strings.Contains(out, "no matching cipher") {
		t.Errorf("chacha20-only client: %v\n%s", err, out)
	}
}

// TestListenDualStack: the default kind of address (":PORT") serves both
// IPv4 and IPv6 (reach.Local, tested in share/reach, lists the addresses).
func TestListenDualStack(t *testing.T) {
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		testenv.Missing(t, "no IPv6 loopback: %v", err)
	}
	l6.Close()
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.Listen = ":0" })
	port := strconv.Itoa(ts.srv.Port())
	if port == "0" {
		t.Fatal("no port after Listen(:0)")
	}
	for _, host := range []string{"127.0.0.1", "::1"} {
		ts.addr = net.JoinHostPort(host, port)
		c, err := ts.dial(t)
		if err != nil {
			t.Errorf("login over %s: %v", host, err)
			continue
		}
		c.Close()
	}
}
