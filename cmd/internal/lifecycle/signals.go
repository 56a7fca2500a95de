package lifecycle

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// hups receives the SIGHUPs of a --daemon process.
var hups = make(chan os.Signal, 1)

// SignalContext is cancelled on the first SIGINT, SIGTERM or SIGHUP: all
// three stop dsftp cleanly (a closed terminal must not leave a dead
// mount behind). Once it is, the signals get their default action back,
// so a second Ctrl-C ends a shutdown that is stuck (say, on a frozen
// router) instead of being ignored. In the background (--daemon) no
// terminal can close, and SIGHUP means reload, as for rclone: it goes to
// Reloads instead.
func SignalContext() (context.Context, context.CancelFunc) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if IsDaemonChild() {
		signal.Notify(hups, syscall.SIGHUP)
	} else {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// Reloads delivers the SIGHUPs of a --daemon process (nothing in the
// foreground, where SIGHUP stops it).
func Reloads() <-chan os.Signal { return hups }
