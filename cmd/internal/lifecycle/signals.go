package lifecycle

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext is cancelled on the first SIGINT, SIGTERM or SIGHUP: all
// three stop dsftp cleanly (a closed terminal must not leave a dead
// mount behind). Once it is, the signals get their default action back,
// so a second Ctrl-C ends a shutdown that is stuck (say, on a frozen
// router) instead of being ignored.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}
