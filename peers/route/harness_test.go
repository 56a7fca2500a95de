package route

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testShare stands in for the share: an SSH server on loopback that
// lets in any key and hands each connection's requests and channels to
// a route Server, as the share does through its Extensions. probe, if
// set, sees the user name of every "none" attempt (the share's Probe).
type testShare struct {
	addr   string
	signer ssh.Signer
	closed atomic.Int64 // connections whose handler was closed
	busy   atomic.Int64
	held   atomic.Pointer[string]
}

func startTestShare(t *testing.T, srv *Server, probe func(user string) bool) *testShare {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testShare{addr: ln.Addr().String(), signer: newSigner(t)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			return &ssh.Permissions{Extensions: map[string]string{"fp": ssh.FingerprintSHA256(k)}}, nil
		},
		AuthLogCallback: func(cm ssh.ConnMetadata, method string, _ error) {
			if method == "none" && probe != nil {
				probe(cm.User())
			}
		},
	}
	cfg.AddHostKey(ts.signer)
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { ts.serve(nc, cfg, srv) })
		}
	})
	return ts
}

func (ts *testShare) serve(nc net.Conn, cfg *ssh.ServerConfig, srv *Server) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	h := srv.Conn(ConnInfo{
		ClientKey: sc.Permissions.Extensions["fp"], Conn: sc, Log: slog.Default(),
		Busy: func() func() { ts.busy.Add(1); return func() { ts.busy.Add(-1) } },
		HoldReverse: func(hostKey string, live func() bool) {
			if live() {
				ts.held.Store(&hostKey)
			}
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for req := range reqs {
			if !h.Request(req) && req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}()
	for nc := range chans {
		if !h.Channel(nc) {
			_ = nc.Reject(ssh.Prohibited, "only sftp sessions are served")
		}
	}
	<-done
	h.Close()
	ts.closed.Add(1)
}

// dial logs in to ts with key.
func (ts *testShare) dial(t *testing.T, key ssh.Signer) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{User: "m", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(ts.signer.PublicKey()), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func fingerprint(s ssh.Signer) string { return ssh.FingerprintSHA256(s.PublicKey()) }
