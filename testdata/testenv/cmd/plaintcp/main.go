// Command plaintcp moves bytes over plain, unencrypted TCP between the
// network namespaces of a test (run it with `ip netns exec`): what a packet
// capture must be able to see, so a check that finds no plaintext in a
// capture is shown to work.
//
//	plaintcp listen ADDR     prints "listening on ADDR", then for each
//	                         connection "received N bytes from ADDR"
//	plaintcp send ADDR FILE  sends FILE's bytes to ADDR and exits
//
// Every step has a deadline, so a lost peer never hangs the test.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

const deadline = 30 * time.Second

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "listen":
		err = listen(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "send":
		err = send(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("usage: plaintcp listen ADDR | plaintcp send ADDR FILE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plaintcp:", err)
		os.Exit(1)
	}
}

func listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("accept on %s: %w", addr, err)
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(deadline))
			n, err := io.Copy(io.Discard, c)
			if err != nil {
				fmt.Printf("error after %d bytes from %s: %v\n", n, c.RemoteAddr(), err)
				return
			}
			fmt.Printf("received %d bytes from %s\n", n, c.RemoteAddr())
		}()
	}
}

func send(addr, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read what to send: %w", err)
	}
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("send to %s: %w", addr, err)
	}
	// Half-close and wait for the listener's close, so every byte is on
	// the wire before the sender exits.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("close the sending side to %s: %w", addr, err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("wait for %s to close: %w", addr, err)
	}
	return nil
}
