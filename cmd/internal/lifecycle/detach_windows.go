package lifecycle

import (
	"errors"
	"io"
	"syscall"
)

var errNoDaemon = errors.New("--daemon is not available on Windows (nor is dsftp mount)")

func detached() (*syscall.SysProcAttr, error) { return nil, errNoDaemon }

func openSyslog() (io.WriteCloser, error) { return nil, errNoDaemon }
