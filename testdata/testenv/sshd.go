//go:build linux

package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHD is a real OpenSSH sshd on 127.0.0.1 serving SFTP with internal-sftp.
type SSHD struct {
	Addr    string // 127.0.0.1:port
	Port    int
	HostKey Key    // the server's host key
	Client  Key    // a client key the server accepts
	Dir     string // what internal-sftp starts in
	Proc    *Process
	conf    string
	user    string
}

// User returns the login name sshd accepts (the test runs as root).
func (s *SSHD) User() string { return s.user }

// StartSSHD starts sshd -D on a free loopback port. Clients log in as the
// current user with s.Client; internal-sftp starts in dir ("-d dir").
func StartSSHD(t testing.TB, dir string) *SSHD {
	t.Helper()
	RequireRoot(t)
	paths := Require(t, "/usr/sbin/sshd")
	tmp := t.TempDir()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd privilege separation dir: %v", err)
	}
	s := &SSHD{Dir: dir, user: "root"}
	s.HostKey = NewKey(t, tmp, "ssh_host_ed25519_key")
	s.Client = NewKey(t, tmp, "client_key")
	authKeys := filepath.Join(tmp, "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(s.Client.Public()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Port = FreePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.conf = filepath.Join(tmp, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress " + s.Addr,
		"HostKey " + s.HostKey.Path,
		"PidFile none",
		"AuthorizedKeysFile " + authKeys,
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"UsePAM no",
		"MaxStartups 100:30:200",
		"MaxSessions 64",
		"LogLevel ERROR",
		"Subsystem sftp internal-sftp -d " + dir,
		"",
	}, "\n")
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t, paths[0])
	return s
}

func (s *SSHD) start(t testing.TB, sshd string) {
	t.Helper()
	s.Proc = Start(t, nil, sshd, "-D", "-e", "-f", s.conf)
	listening := Poll(10*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-s.Proc.Done():
			t.Fatalf("sshd exited at start:\n%s", s.Proc.Output.String())
		default:
		}
		return false
	})
	if !listening {
		t.Fatalf("sshd did not listen on %s:\n%s", s.Addr, s.Proc.Output.String())
	}
}

// Restart kills sshd (and so its sessions, which are its children only
// while the listener lives) and starts it again on the same port.
func (s *SSHD) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t, s.Proc.Cmd.Path)
}

// Kill sends SIGKILL to the listening sshd and waits for it to exit.
// Per-connection sshd children keep running until their client disconnects.
func (s *SSHD) Kill() {
	_ = s.Proc.Cmd.Process.Kill()
	<-s.Proc.Done()
}

// Signal sends sig to the listener and to every sshd process serving one of
// its connections (found via their parent PID), e.g. SIGSTOP to freeze it.
// The listener is stopped first, so that it cannot fork a session that the
// list of children would miss, and children are listed again until no new
// one shows up; only then does the listener get sig itself (its children
// would be reparented, and so lost, if it died first).
func (s *SSHD) Signal(sig syscall.Signal) error {
	listener := s.Proc.Cmd.Process.Pid
	var first error
	note := func(pid int, err error) {
		if err != nil && err != syscall.ESRCH && first == nil {
			first = fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	if sig != syscall.SIGCONT {
		note(listener, syscall.Kill(listener, syscall.SIGSTOP))
	}
	done := map[int]bool{}
	for {
		fresh := 0
		for _, pid := range Descendants(listener) {
			if !done[pid] {
				done[pid] = true
				fresh++
				note(pid, syscall.Kill(pid, sig))
			}
		}
		if fresh == 0 {
			break
		}
	}
	note(listener, syscall.Kill(listener, sig))
	if sig != syscall.SIGSTOP && sig != syscall.SIGKILL {
		note(listener, syscall.Kill(listener, syscall.SIGCONT))
	}
	return first
}

// URL returns an sftp:// URL for dsftp's --peer flag, with the host key
// fingerprint pinned.
func (s *SSHD) URL() string {
	return fmt.Sprintf("sftp://%s@%s%s?fingerprint=%s", s.user, s.Addr, s.Dir, s.HostKey.Fingerprint())
}

// Descendants lists the PIDs of all processes below pid, found in /proc.
func Descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses; fields resume
		// after the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}
