package pool

import (
	"fmt"
	"io"

	"github.com/dsftp/dsftp/peers/pool/internal/sftpwire"
)

// Errors of the data session that the pool's error policy knows.
var (
	// errServerStatus marks an error status from a healthy server.
	errServerStatus = sftpwire.ErrStatus
	// errClosedShort: a read sent with its CLOSE came back short, and
	// the handle was gone for the rest.
	errClosedShort = sftpwire.ErrClosedShort
)

// openDataChan starts a connection's second SFTP session, which carries
// Readers, Fetch and bounded listings (sftpwire says why they do not use
// pkg/sftp); track records incoming data for the deadline watchdog.
func openDataChan(lk link, track func(io.Reader) io.Reader) (*sftpwire.Chan, error) {
	sess, err := lk.openSFTP()
	if err != nil {
		return nil, fmt.Errorf("open data session: %w", err)
	}
	return sftpwire.Start(sess.w, track(sess.r), sess.close)
}
