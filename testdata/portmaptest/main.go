// Command portmaptest is a stand-in share for the port-mapping tests: it
// listens on a TCP port, answers every connection with one line, and runs
// the same address tracking that `dsftp share` runs, printing each change
// of the advertised addresses. Tests run it under `ip netns exec` on the
// LAN side of a real miniupnpd router.
//
// Output lines the tests look for:
//
//	LISTEN <port>
//	ADDRS <addr> <addr> …        (after every change)
//	EXIT                         (after the mapping was removed)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/share/reach"
)

func main() {
	port := flag.Int("port", 0, "TCP port to listen on (0: any free port)")
	lease := flag.Duration("lease", 0, "UPnP lease (0: default)")
	check := flag.Duration("check", 0, "how often to check the router (0: default)")
	noUPnP := flag.Bool("no-upnp", false, "do not map the port")
	banner := flag.String("banner", "portmaptest", "line sent to every connection")
	flag.Parse()

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "portmaptest:", err)
		os.Exit(1)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", *banner)
			c.Close()
		}
	}()
	p := l.Addr().(*net.TCPAddr).Port
	fmt.Printf("LISTEN %d\n", p)
	start := time.Now()
	t := reach.Track(ctx, reach.TrackOptions{
		Port:          uint16(p),
		NoUPnP:        *noUPnP,
		Warn:          func(text string) { fmt.Printf("WARNING %s\n", text) },
		Lease:         *lease,
		CheckInterval: *check,
		OnChange: func(as []reach.Addr) {
			fmt.Printf("ADDRS %s\n", strings.Join(reach.Strings(as), " "))
			for _, a := range as {
				fmt.Printf("  %s (after %v)\n", a, time.Since(start).Round(time.Millisecond))
			}
		},
	})
	<-ctx.Done()
	t.Wait()
	l.Close()
	fmt.Println("EXIT")
}
