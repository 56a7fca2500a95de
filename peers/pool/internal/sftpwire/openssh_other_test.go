//go:build !linux

package sftpwire

import (
	"io"
	"testing"
)

// opensshServer: OpenSSH's sftp-server is driven on Linux only, where the
// tests run.
func opensshServer(tb testing.TB) (io.WriteCloser, io.Reader) {
	tb.Skip("OpenSSH's sftp-server is driven on Linux only")
	return nil, nil
}
