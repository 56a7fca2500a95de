// Command punchtest runs peers/punch inside a network namespace of the
// reachability lab (run it with `ip netns exec`): it learns its public UDP
// address by STUN, prints it, waits for the peer's candidates, punches a
// QUIC path to the peer and reads from the peer over SSH on that path,
// while serving its own SSH on every stream the peer opens.
//
//	punchtest -listen IP:PORT -key FILE -peer FILE.pub -stun A,B -peer-file FILE -name NAME
//
// Output, one fact a line:
//
//	local IP:PORT
//	stun SERVER PUBLIC          (or "stun SERVER error: …")
//	public IP:PORT
//	nat cone|symmetric|none|unknown
//	punched remote=IP:PORT dialed=BOOL ms=N
//	read "I am PEER" ms=N       (from the punch's start to the SSH read)
//	punch failed: ERROR; hint: WHAT WOULD HELP
//
// The peer file, written by the test once both sides printed their
// addresses, holds "candidates IP:PORT …" and "nat TYPE" lines. The
// program serves until killed; every step has a deadline.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dsftp/dsftp/peers/punch"
	"golang.org/x/crypto/ssh"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "punchtest:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "0.0.0.0:0", "UDP address to listen on")
	keyFile := flag.String("key", "", "own host key (OpenSSH private key)")
	peerFile := flag.String("peer", "", "the peer's host key (.pub)")
	stunList := flag.String("stun", "", "STUN servers, comma-separated")
	candFile := flag.String("peer-file", "", "file the peer's candidates appear in")
	name := flag.String("name", "", "the name this side answers to")
	timeout := flag.Duration("timeout", 15*time.Second, "how long the punch may take")
	flag.Parse()

	host, peerKey, err := loadKeys(*keyFile, *peerFile)
	if err != nil {
		return err
	}
	self, peer := ssh.FingerprintSHA256(host.PublicKey()), ssh.FingerprintSHA256(peerKey)
	e, err := punch.Listen(*listen, punch.Config{ID: self})
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("local %s\n", e.Addr())
	go serveSSH(e, host, peerKey, *name)

	servers, err := punch.ParseSTUN(strings.Split(*stunList, ","))
	if err != nil {
		return err
	}
	ms := e.Discover(context.Background(), servers)
	for _, m := range ms {
		if m.Err != nil {
			fmt.Printf("stun %s error: %v\n", m.Server, m.Err)
		} else {
			fmt.Printf("stun %s %s\n", m.Server, m.Public)
		}
	}
	pub, err := punch.PublicAddr(ms)
	if err != nil {
		return err
	}
	nat := punch.Classify(e.Addr(), ms)
	fmt.Printf("public %s\nnat %s\n", pub, nat)

	cands, peerNAT, err := waitPeerFile(*candFile, 60*time.Second)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p, err := e.Punch(ctx, peer, cands)
	if err != nil {
		fmt.Printf("punch failed: %v; hint: %s\n", err, punch.Hint(nat, peerNAT))
		select {} // keep serving: the peer's punch has its own deadline
	}
	fmt.Printf("punched remote=%s dialed=%v ms=%d\n", p.RemoteAddr(), p.Dialed, time.Since(start).Milliseconds())
	got, err := readPeer(ctx, p, peerKey, host)
	if err != nil {
		return fmt.Errorf("read from the peer over the punched path: %w", err)
	}
	fmt.Printf("read %q ms=%d\n", got, time.Since(start).Milliseconds())
	select {}
}

func loadKeys(keyFile, peerFile string) (ssh.Signer, ssh.PublicKey, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read host key: %w", err)
	}
	host, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parse host key %s: %w", keyFile, err)
	}
	b, err = os.ReadFile(peerFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read the peer's key: %w", err)
	}
	peer, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parse the peer's key %s: %w", peerFile, err)
	}
	return host, peer, nil
}

// waitPeerFile waits for the test to write the peer's candidates.
func waitPeerFile(path string, d time.Duration) ([]netip.AddrPort, punch.NAT, error) {
	end := time.Now().Add(d)
	for {
		f, err := os.Open(path)
		if err == nil {
			defer f.Close()
			var cands []netip.AddrPort
			nat := punch.NATUnknown
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fs := strings.Fields(sc.Text())
				switch {
				case len(fs) > 1 && fs[0] == "candidates":
					for _, s := range fs[1:] {
						a, err := netip.ParseAddrPort(s)
						if err != nil {
							return nil, "", fmt.Errorf("peer file: candidate %q: %w", s, err)
						}
						cands = append(cands, a)
					}
				case len(fs) == 2 && fs[0] == "nat":
					nat = punch.NAT(fs[1])
				}
			}
			return cands, nat, sc.Err()
		}
		if time.Now().After(end) {
			return nil, "", fmt.Errorf("no peer file %s within %v", path, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPeer logs in to the peer's SSH over a stream of the path, checking
// its host key, and runs "whoami".
func readPeer(ctx context.Context, p *punch.Path, peerKey ssh.PublicKey, client ssh.Signer) (string, error) {
	s, err := p.OpenStream(ctx)
	if err != nil {
		return "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(s, s.RemoteAddr().String(), &ssh.ClientConfig{
		User: "punchtest", Auth: []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyCallback: ssh.FixedHostKey(peerKey),
	})
	if err != nil {
		s.Close()
		return "", err
	}
	cl := ssh.NewClient(sc, chans, reqs)
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		return "", err
	}
	out, err := sess.Output("whoami")
	return strings.TrimSpace(string(out)), err
}

// serveSSH answers every stream the peer opens: it logs in only the
// peer's key and answers "whoami" with "I am NAME".
func serveSSH(e *punch.Endpoint, host ssh.Signer, peer ssh.PublicKey, name string) {
	conf := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) != string(peer.Marshal()) {
				return nil, errors.New("not the peer's key")
			}
			return nil, nil
		},
	}
	conf.AddHostKey(host)
	for {
		c, err := e.Accept(context.Background())
		if err != nil {
			return
		}
		go serveConn(c, conf, name)
	}
}

func serveConn(c net.Conn, conf *ssh.ServerConfig, name string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, conf)
	if err != nil {
		fmt.Printf("ssh login refused: %v\n", err)
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		for r := range creqs {
			if r.Type != "exec" {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, nil)
			fmt.Fprintf(ch, "I am %s\n", name)
			ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 0))
			ch.Close()
			fmt.Printf("served the peer\n")
			break
		}
	}
}
