package share

import (
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"github.com/pkg/sftp"
)

// The flow control of SFTP sessions (requests in flight per connection,
// bytes queued per session) is limits.Flow; what the server adds is the
// state of a logged-in connection and skipping the work of requests whose
// client has gone.

// errSessionGone answers requests still queued when the client has gone:
// the work is skipped, not done for nobody.
var errSessionGone = errors.New("session closed")

// connFlow is the state a logged-in connection's sessions share.
type connFlow struct {
	req     *limits.Requests            // requests in flight, all sessions
	handles atomic.Int64                // open files and directories
	gone    atomic.Bool                 // the SSH connection has ended
	busy    atomic.Int64                // extensions using it (ConnInfo.Busy), e.g. relays
	hold    atomic.Pointer[heldReverse] // the reverse connection it carries, if any
}

func newConnFlow(req *limits.Requests) *connFlow { return &connFlow{req: req} }

// idleFor reports how long the connection has had no open handle, no
// request in flight, no busy extension (a relay, which ends itself once
// idle) and no new request; 0 if it is busy.
func (c *connFlow) idleFor(now time.Time) time.Duration {
	if c.handles.Load() > 0 || c.req.InFlight() > 0 || c.busy.Load() > 0 {
		return 0
	}
	return now.Sub(c.req.Last())
}

// sessionFlow is one SFTP session of a connection, read and written
// through its flow control.
type sessionFlow struct {
	*limits.Flow
	conn *connFlow
}

func newSessionFlow(ch io.ReadWriteCloser, conn *connFlow, log *slog.Logger) *sessionFlow {
	return &sessionFlow{Flow: conn.req.NewFlow(ch, func() {
		log.Warn("closing session: it queued more than 1 MiB of requests without reading the replies")
	}), conn: conn}
}

// dead reports whether nobody will read this session's replies.
func (s *sessionFlow) dead() bool { return s.Gone() || s.conn.gone.Load() }

// cancelFiles wraps the FileGet handler so that reads still queued when
// the client has gone do no disk I/O.
type cancelFiles struct {
	sftp.FileReader
	s *sessionFlow
}

func (c cancelFiles) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if c.s.dead() {
		return nil, errSessionGone
	}
	ra, err := c.FileReader.Fileread(r)
	if err != nil {
		return nil, err
	}
	return cancelReaderAt{ra, c.s}, nil
}

type cancelReaderAt struct {
	io.ReaderAt
	s *sessionFlow
}

func (c cancelReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.s.dead() {
		return 0, errSessionGone
	}
	return c.ReaderAt.ReadAt(p, off)
}

// Close closes the file (pkg/sftp closes handles that are io.Closers).
func (c cancelReaderAt) Close() error {
	if cl, ok := c.ReaderAt.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
