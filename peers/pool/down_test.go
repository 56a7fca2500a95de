//go:build linux

package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

func TestDownErrorCause(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	unreach := fmt.Errorf("dial: %w", syscall.EHOSTUNREACH)
	relay := errors.New("relay m: open channel rejected")
	hostKey := &HostKeyError{Peer: "p", Addr: "a", Want: []string{"x"}, Got: "y"}
	cases := []struct {
		name string
		errs []error
		want syscall.Errno // 0: not down
	}{
		{"refused", []error{refused}, syscall.ECONNREFUSED},
		{"closed before SSH began (a dying process)", []error{fmt.Errorf("ssh handshake: ssh: handshake failed: %w", io.EOF), relay}, syscall.ECONNREFUSED},
		{"refused beats silence", []error{fmt.Errorf("ssh handshake: %w", ErrTimeout), refused}, syscall.ECONNREFUSED},
		{"unreachable beats silence", []error{context.DeadlineExceeded, unreach}, syscall.EHOSTUNREACH},
		{"silence", []error{fmt.Errorf("ssh handshake: %w", ErrTimeout)}, syscall.ETIMEDOUT},
		{"only a relay", []error{relay}, syscall.EHOSTUNREACH},
		{"another host's key beside a refusal", []error{hostKey, refused}, syscall.ECONNREFUSED},
		{"only other hosts' keys", []error{hostKey}, 0},
		{"keys refused", []error{refused, fmt.Errorf("log in: %w", ErrAuth)}, 0},
	}
	for _, c := range cases {
		de := downError(peers.Peer{Name: "p"}, c.errs)
		switch {
		case c.want == 0 && de != nil:
			t.Errorf("%s: down with %v, want an answer", c.name, de.Cause)
		case c.want != 0 && (de == nil || de.Cause != c.want || Errno(de) != c.want || !errors.Is(de, c.want)):
			t.Errorf("%s: %v, want cause %v", c.name, de, c.want)
		}
	}
}

// TestTransportLost: a request whose connection broke under it (the
// peer died: reset, broken pipe) is asked again on a fresh connection;
// an answer or a deadline is not.
func TestTransportLost(t *testing.T) {
	reset := fmt.Errorf("failed to send packet: %w", &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)})
	cases := []struct {
		err  error
		want bool
	}{
		{reset, true},
		{fmt.Errorf("send: %w", syscall.EPIPE), true},
		{errConnLost, true},
		{errPeerClosed, true},
		{io.ErrUnexpectedEOF, true},
		{io.EOF, false},
		{ErrTimeout, false},
		{errSilent, false},
		{os.ErrNotExist, false},
	}
	for _, c := range cases {
		if got := transportLost(c.err); got != c.want {
			t.Errorf("transportLost(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// suspects records what the pool reports.
type suspects struct {
	mu    sync.Mutex
	ids   map[string]time.Time
	heard map[string]int
}

func (s *suspects) Suspect(id string, since time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = since
	return true
}

func (s *suspects) Heard(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; !ok {
		return false
	}
	delete(s.ids, id)
	if s.heard == nil {
		s.heard = map[string]int{}
	}
	s.heard[id]++
	return true
}

func (s *suspects) Hidden(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

func (s *suspects) heardOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heard[id]
}

func (s *suspects) get(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.ids[id]
	return t, ok
}

// probing reports whether a probe of the peer (group.lost) is under way.
func (p *Pool) probing(id string) bool {
	p.mu.Lock()
	g := p.groups[id]
	p.mu.Unlock()
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.probing
}

// TestKilledPeerIsSuspected: when a peer we hold a connection to is
// killed (OpenSSH, listener and sessions, SIGKILL), the pool finds out
// without anyone reading, reports it once to its Suspects, and reads fail
// with the real cause (connection refused). A --peer peer is reported to
// nobody.
func TestKilledPeerIsSuspected(t *testing.T) {
	for _, source := range []string{peers.SourceDiscord, peers.SourceFlag} {
		t.Run(source, func(t *testing.T) {
			s := testenv.StartSSHD(t, t.TempDir())
			peer := peerOf(t, s)
			peer.Source = source
			sus := &suspects{ids: map[string]time.Time{}}
			logs := &testenv.SyncBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := newPool(t, Options{Timeout: 2 * time.Second, Identities: []ssh.Signer{s.Client.Signer}, Suspects: sus, Logger: log})
			if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			if err := s.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if source == peers.SourceFlag {
				testenv.WaitFor(t, 10*time.Second, "the pool's probe of the killed peer to fail", func() bool {
					return strings.Contains(logs.String(), "cannot reach peer") && !p.probing(peer.ID)
				})
				if _, ok := sus.get(peer.ID); ok {
					t.Error("a --peer peer was reported to the registry")
				}
			} else {
				testenv.WaitFor(t, 10*time.Second, "the killed peer to be reported", func() bool {
					_, ok := sus.get(peer.ID)
					return ok
				})
				since, _ := sus.get(peer.ID)
				t.Logf("reported %v after SIGKILL, without a read", time.Since(killed).Round(time.Millisecond))
				if since.Before(killed) {
					t.Errorf("reported as failing since %v, before it was killed at %v", since, killed)
				}
			}
			_, err := p.Lstat(context.Background(), peer, "")
			if Errno(err) != syscall.ECONNREFUSED {
				t.Errorf("read of a killed peer: %v (errno %v), want ECONNREFUSED", err, Errno(err))
			}
		})
	}
}
