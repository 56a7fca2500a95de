package pool

import (
	"context"
	"errors"
	"fmt"
	"github.com/dsftp/dsftp/peers/pool/internal/sftpwire"
	"io"
	"io/fs"
	"net"
	"syscall"

	"github.com/dsftp/dsftp/peers"
	"github.com/pkg/sftp"
)

var (
	// ErrTimeout is returned (wrapped) when a peer did not answer within
	// the deadline. It matches syscall.ETIMEDOUT.
	ErrTimeout = fmt.Errorf("no answer within the deadline: %w", syscall.ETIMEDOUT)
	// ErrUnreachable is returned (wrapped) when no address of a peer could
	// be connected to. It matches syscall.EHOSTUNREACH.
	ErrUnreachable = fmt.Errorf("peer unreachable: %w", syscall.EHOSTUNREACH)

	// ErrAuth is returned (wrapped) when a peer refused every client key
	// offered. It matches syscall.EACCES.
	ErrAuth = fmt.Errorf("no client key accepted (add one with --identity or ssh-agent): %w", syscall.EACCES)

	errNotSupported = fmt.Errorf("not supported by the server: %w", syscall.ENOTSUP)
	// errConnLost is the data session's own error for a connection that
	// broke, so that one test (errors.Is) catches it on every path.
	errConnLost   = sftpwire.ErrLost
	errPeerClosed = fmt.Errorf("%w (closed by the peer)", errConnLost)
)

// HostKeyError is a host key that does not match what the peer is pinned to.
type HostKeyError struct {
	Peer, Addr string
	Want       []string // acceptable fingerprints, or nil when the host is unknown
	Got        string
}

func (e *HostKeyError) Error() string {
	if len(e.Want) == 0 {
		return fmt.Sprintf("host key %s of %s (%s) is not known; pin it with ?fingerprint=%s in the --peer URL or add it to ~/.ssh/known_hosts",
			e.Got, e.Peer, e.Addr, e.Got)
	}
	return fmt.Sprintf("host key mismatch for %s (%s): expected %v, got %s; refusing to connect",
		e.Peer, e.Addr, e.Want, e.Got)
}

// Is lets errors.Is(err, syscall.EACCES) hold.
func (e *HostKeyError) Is(target error) bool { return target == syscall.EACCES }

func opError(op string, peer peers.Peer, rel string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return fmt.Errorf("%s %s:/%s: %w", op, peerLabel(peer), rel, err)
}

func peerLabel(p peers.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// Errno maps an error from this package (or pkg/sftp) to the errno a file
// system should return. Only the errnos this package means are passed on;
// transport noise (EPIPE, ECONNRESET, …) becomes EIO.
func Errno(err error) syscall.Errno {
	var hk *HostKeyError
	var down *DownError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &down):
		return down.Cause
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, ErrUnreachable):
		return syscall.EHOSTUNREACH
	case errors.Is(err, ErrAuth):
		return syscall.EACCES
	case errors.As(err, &hk):
		return syscall.EACCES
	case errors.Is(err, errNotSupported):
		return syscall.ENOTSUP
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	}
	var st *sftp.StatusError
	if errors.As(err, &st) && st.FxCode() == sftp.ErrSSHFxOpUnsupported {
		return syscall.ENOTSUP
	}
	return syscall.EIO
}

// transportLost reports whether err is the connection breaking under a
// request (closed, reset, a broken pipe), rather than an answer of the
// server or a deadline: the transport's own errno says nothing of the
// peer (EIO), a new dial does.
func transportLost(err error) bool {
	return errors.Is(err, errConnLost) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// connBroken reports whether err means the connection itself is unusable,
// as opposed to an answer from a healthy server (no such file, EOF, …).
func connBroken(err error) bool {
	if err == nil || err == io.EOF || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, context.Canceled) || errors.Is(err, errNotSupported) || errors.Is(err, errServerStatus) {
		return false
	}
	var st *sftp.StatusError
	if errors.As(err, &st) {
		c := st.FxCode()
		return c == sftp.ErrSSHFxConnectionLost || c == sftp.ErrSSHFxNoConnection
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return true
}
