//go:build !windows

package lifecycle

import (
	"io"
	"log/syslog"
	"syscall"
)

// detached puts the --daemon child in a session of its own: no terminal
// signal (SIGHUP when it closes, Ctrl-C) reaches it.
func detached() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Setsid: true}, nil
}

// openSyslog connects to the system log, for a --daemon without a
// --log-file.
func openSyslog() (io.WriteCloser, error) {
	return syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "dsftp")
}
