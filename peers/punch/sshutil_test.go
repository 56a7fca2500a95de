package punch

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sshServer serves SSH on the connections that accept returns, logging in
// only client, and answering "exec" with the command's output:
// "whoami" prints name, "zeros N" writes N zero bytes.
func sshServer(t testing.TB, accept func(context.Context) (net.Conn, error), host, client ssh.Signer, name string) {
	t.Helper()
	conf := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) != string(client.PublicKey().Marshal()) {
				return nil, fmt.Errorf("unknown key")
			}
			return nil, nil
		},
	}
	conf.AddHostKey(host)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			c, err := accept(ctx)
			if err != nil {
				return
			}
			go serveSSHConn(c, conf, name)
		}
	}()
}

func serveSSHConn(c net.Conn, conf *ssh.ServerConfig, name string) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, conf)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for r := range creqs {
				if r.Type != "exec" || len(r.Payload) < 4 {
					r.Reply(false, nil)
					continue
				}
				r.Reply(true, nil)
				runCommand(ch, string(r.Payload[4:]), name)
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, 0)
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}

func runCommand(ch ssh.Channel, cmd, name string) {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 1 && f[0] == "whoami":
		fmt.Fprintf(ch, "I am %s\n", name)
	case len(f) == 2 && f[0] == "zeros":
		n, _ := strconv.ParseInt(f[1], 10, 64)
		buf := make([]byte, 256<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := ch.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	}
}

// sshClient logs in over c as client, checking that the server's host key
// is host.
func sshClient(c net.Conn, host ssh.PublicKey, client ssh.Signer) (*ssh.Client, error) {
	sc, chans, reqs, err := ssh.NewClientConn(c, c.RemoteAddr().String(), &ssh.ClientConfig{
		User:            "reader",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyCallback: ssh.FixedHostKey(host),
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}
