package shell

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// RunWithSignals is Run for a terminal session: Ctrl-C (SIGINT) stops the
// running command only (a get: run it again to resume), SIGTERM ends the
// session.
func (s *Shell) RunWithSignals(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				if sig == syscall.SIGTERM {
					cancel()
					return
				}
				s.Interrupt()
			}
		}
	}()
	return s.Run(ctx)
}
