//go:build linux

package sftpwire

import (
	"io"
	"os/exec"
	"testing"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// opensshServer runs OpenSSH's sftp-server on pipes and returns its
// streams; it ends with the test.
func opensshServer(tb testing.TB) (io.WriteCloser, io.Reader) {
	tb.Helper()
	bin := testenv.Require(tb, "/usr/lib/openssh/sftp-server")[0]
	cmd := exec.Command(bin)
	w, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		w.Close()
		cmd.Wait()
	})
	return w, r
}
