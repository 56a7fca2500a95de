package pool

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dialStagger is how long one address gets before the next is tried in
// parallel (happy eyeballs, RFC 8305 suggests 250 ms).
const dialStagger = 250 * time.Millisecond

// badAddrFor is how long an address that failed is tried last.
const badAddrFor = 30 * time.Second

// ciphers prefers AES-GCM: with AES-NI it costs a fraction of the CPU of
// chacha20-poly1305 in Go, and the SSH transport is the bottleneck of a
// bulk read.
var ciphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

type dialResult struct {
	c    *conn
	addr string
	err  error
}

// dial connects to the first of addrs that completes an SSH handshake with
// the right host key and starts SFTP on it. Addresses are tried in order,
// each dialStagger after the previous or as soon as the previous failed,
// all racing in parallel; the whole dial is bounded by the pool's Timeout.
func (p *Pool) dial(peer peers.Peer, addrs []string, g *group) (*conn, string, error) {
	return p.dialWithin(peer, addrs, g, p.opts.Timeout)
}

// dialWithin is dial bounded by budget.
func (p *Pool) dialWithin(peer peers.Peer, addrs []string, g *group, budget time.Duration) (*conn, string, error) {
	if len(addrs) == 0 {
		return nil, "", fmt.Errorf("peer %s has no address: %w", peerLabel(peer), ErrUnreachable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	results := make(chan dialResult, len(addrs))
	next, pending := 0, 0
	launch := func() {
		addr := addrs[next]
		next++
		pending++
		go func() {
			c, err := p.dialAddr(ctx, peer, addr, g)
			results <- dialResult{c, addr, err}
		}()
	}
	launch()
	stagger := time.NewTimer(dialStagger)
	defer stagger.Stop()
	var errs []error
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				// Losers that still finish are closed.
				go func(n int) {
					for ; n > 0; n-- {
						if l := <-results; l.c != nil {
							l.c.kill(errPoolClosed)
						}
					}
				}(pending)
				return r.c, r.addr, nil
			}
			g.markBad(r.addr, badAddrFor)
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, r.err))
			if next < len(addrs) {
				launch()
				stagger.Reset(dialStagger)
			}
		case <-stagger.C:
			if next < len(addrs) {
				launch()
				stagger.Reset(dialStagger)
			}
		}
	}
	if de := downError(peer, errs); de != nil {
		return nil, "", de
	}
	// The peer answered and refused, or only other hosts answered.
	return nil, "", fmt.Errorf("dial peer %s: %w", peerLabel(peer), errors.Join(errs...))
}

// busyTries is how many TCP connections one dial of an address makes
// while each is closed by the share before the SSH handshake is done. A
// share that is busy admitting connections closes new ones early: OpenSSH
// past MaxStartups, and a dsftp share whose address is shared with a
// flood of silent connections (it closes the oldest silent one from an
// address, which on a busy machine can be ours before our version line
// left). Another try costs a round trip or two and is admitted like any
// other.
const busyTries = 3

// dialAddr connects to one address; ctx bounds everything up to a working
// SFTP session.
func (p *Pool) dialAddr(ctx context.Context, peer peers.Peer, addr string, g *group) (*conn, error) {
	for try := 1; ; try++ {
		c, handshaking, err := p.dialAddrOnce(ctx, peer, addr, g)
		if err == nil || !handshaking || !closedEarly(err) || try == busyTries || ctx.Err() != nil || !isDirect(addr) {
			return c, err
		}
		p.log.Debug("connection closed during the SSH handshake: trying again", "peer", peerLabel(peer), "addr", addr, "try", try, "err", err)
	}
}

// closedEarly reports whether err is a connection reset or closed by the
// other end, as a busy share does before a login.
func closedEarly(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isDirect reports whether addr is a host:port dialed over TCP, not a
// route (reverse, punched, TURN, relay) whose far end is not a TCP accept.
func isDirect(addr string) bool {
	_, relay := route.RelayOf(addr)
	return addr != route.Reverse && addr != route.Punched && addr != route.TURN && !relay
}

// dialAddrOnce makes one connection to addr; handshaking reports that it
// failed while connecting or in the SSH handshake, before any host key
// check or login.
func (p *Pool) dialAddrOnce(ctx context.Context, peer peers.Peer, addr string, g *group) (_ *conn, handshaking bool, _ error) {
	if addr == route.Reverse && p.opts.Routes != nil {
		c, err := p.dialReverseSFTP(ctx, peer, g)
		if !errors.Is(err, errOldReverse) {
			return c, false, err
		}
		// The member runs an older dsftp: a complete SSH connection
		// inside a channel, as before.
	}
	nc, err := p.dialStream(ctx, peer, addr)
	if err != nil {
		return nil, true, err
	}
	// The SSH and SFTP handshakes take no context: closing the socket
	// when ctx ends unblocks them.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		_ = nc.SetDeadline(dl)
	}

	cfg, closeAgent := p.clientConfig(peer, addr)
	defer closeAgent()
	c := &conn{g: g, addr: addr, done: make(chan struct{})}
	sc, chans, reqs, err := ssh.NewClientConn(heardConn{withReadBuffer(nc), c}, addr, cfg)
	if err != nil {
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, false, hk
		}
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("ssh handshake: %w", ErrTimeout)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, false, fmt.Errorf("log in as %q: %w: %v", cfg.User, ErrAuth, err)
		}
		return nil, true, fmt.Errorf("ssh handshake: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	c.ssh = clientLink{client}
	// The bulk session (listings, reads) opens alongside the metadata
	// one: three round trips saved before the first listing over a long
	// link. A failure here is retried at first use.
	go func() { _, _ = c.dataChan() }()
	cl, err := startSFTP(c.ssh, c)
	if err != nil {
		client.Close()
		return nil, false, err
	}
	c.sftp = cl
	c.piece = smallPiece
	if _, ok := cl.HasExtension("limits@openssh.com"); ok {
		c.piece = bigPiece
	}
	if strings.Contains(string(sc.ServerVersion()), "dsftp") {
		// dsftp share answers reads of up to 255 KiB.
		c.piece = bigPiece
	}
	now := time.Now()
	c.lastData.Store(now.UnixNano())
	c.noteHeard(now)
	_ = nc.SetDeadline(time.Time{})
	if !stop() {
		cl.Close()
		client.Close()
		return nil, false, fmt.Errorf("ssh handshake: %w", ErrTimeout)
	}
	ok = true
	return c, false, nil
}

// startSFTP opens an SFTP session on l for c, whose progress it
// records; the caller closes l on error.
func startSFTP(l link, c *conn) (*sftp.Client, error) {
	sess, err := l.openSFTP()
	if err != nil {
		return nil, err
	}
	cl, err := sftp.NewClientPipe(progressReader{sess.r, c}, sess.w, sftp.MaxPacketUnchecked(bigPiece))
	if err != nil {
		sess.close()
		return nil, fmt.Errorf("start sftp: %w", err)
	}
	return cl, nil
}

// auth offers the per-run key first to dsftp peers (that is the key they
// accept) and last to peers from --peer URLs (usually plain OpenSSH
// servers that know the user's own keys), to stay within MaxAuthTries.
func (p *Pool) auth(peer peers.Peer) ([]ssh.AuthMethod, func()) {
	var agentConn net.Conn
	closeAgent := func() {
		if agentConn != nil {
			agentConn.Close()
		}
	}
	signers := func() ([]ssh.Signer, error) {
		var own []ssh.Signer
		own = append(own, p.opts.Identities...)
		if p.opts.AgentSocket != "" {
			c, err := net.DialTimeout("unix", p.opts.AgentSocket, time.Second)
			if err == nil {
				agentConn = c
				if as, err := agent.NewClient(c).Signers(); err == nil {
					own = append(own, as...)
				}
			}
		}
		if peer.Source == peers.SourceFlag {
			return append(own, p.opts.RunKey), nil
		}
		return append([]ssh.Signer{p.opts.RunKey}, own...), nil
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(signers)}, closeAgent
}

// hostKeyAlgorithms asks the server for a host key of a type we can check:
// the pinned key's, or one of the types known_hosts holds for addr (else
// a server with several host keys may present one known_hosts lacks, and
// the check fails although the host is known). nil means the defaults.
func (p *Pool) hostKeyAlgorithms(peer peers.Peer, addr string) []string {
	var types []string
	switch {
	case peer.HostKey != nil:
		types = []string{peer.HostKey.Type()}
	case peer.HostKeyFingerprint != "":
		return nil
	default:
		cb, err := knownhosts.New(p.knownHostsFile())
		if err != nil {
			return nil
		}
		// A key no host has makes the callback list the host's known keys.
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		probe, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if err := cb(addr, &net.TCPAddr{}, probe.PublicKey()); !errors.As(err, &ke) || len(ke.Want) == 0 {
			return nil
		}
		for _, k := range ke.Want {
			types = append(types, k.Key.Type())
		}
	}
	var algos []string
	for _, t := range types {
		if t == ssh.KeyAlgoRSA {
			// An RSA key is offered under its SHA-2 signature names.
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		}
		algos = append(algos, t)
	}
	return algos
}

func (p *Pool) knownHostsFile() string {
	if p.opts.KnownHostsFile != "" {
		return p.opts.KnownHostsFile
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".ssh", "known_hosts")
}

// hostKeyCallback accepts exactly peer.HostKey when set, else a key with
// the pinned fingerprint, else what known_hosts says.
func (p *Pool) hostKeyCallback(peer peers.Peer) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		got := ssh.FingerprintSHA256(key)
		if got == p.opts.SelfID && got != "" {
			return fmt.Errorf("%s answers with our own host key: it is this machine's own share, not %s's (a local address of its network that is ours on this one)", hostname, peerLabel(peer))
		}
		if peer.HostKey != nil {
			if bytes.Equal(key.Marshal(), peer.HostKey.Marshal()) {
				return nil
			}
			return &HostKeyError{Peer: peerLabel(peer), Addr: hostname, Want: []string{ssh.FingerprintSHA256(peer.HostKey)}, Got: got}
		}
		if peer.HostKeyFingerprint != "" {
			if got == peer.HostKeyFingerprint {
				return nil
			}
			return &HostKeyError{Peer: peerLabel(peer), Addr: hostname, Want: []string{peer.HostKeyFingerprint}, Got: got}
		}
		file := p.knownHostsFile()
		cb, err := knownhosts.New(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return &HostKeyError{Peer: peerLabel(peer), Addr: hostname, Got: got}
			}
			return fmt.Errorf("read %s: %w", file, err)
		}
		err = cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			var want []string
			for _, k := range ke.Want {
				want = append(want, ssh.FingerprintSHA256(k.Key))
			}
			return &HostKeyError{Peer: peerLabel(peer), Addr: hostname, Want: want, Got: got}
		}
		return err
	}
}

// connReadBuf is the read buffer under the SSH transport. x/crypto/ssh
// reads each packet with two or three small reads; one large buffer turns
// them into about one read(2) per 64 KiB of whatever has arrived.
const connReadBuf = 256 << 10

// bufferedConn is a net.Conn whose reads go through a large buffer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// withReadBuffer buffers the reads of a socket. A relayed stream is an SSH
// channel, whose reads are already copies from memory: a buffer there
// would only add a copy of every byte.
func withReadBuffer(nc net.Conn) net.Conn {
	if _, ok := nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	}); !ok {
		return nc
	}
	return bufferedConn{nc, bufio.NewReaderSize(nc, connReadBuf)}
}

// clientConfig is the SSH client configuration for logging in to peer at
// addr: our keys, the peer's host key check, AES-GCM first. closeAgent
// releases the ssh-agent connection once the handshake is over.
func (p *Pool) clientConfig(peer peers.Peer, addr string) (cfg *ssh.ClientConfig, closeAgent func()) {
	auth, closeAgent := p.auth(peer)
	user := peer.User
	if user == "" {
		user = p.opts.User
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   p.hostKeyCallback(peer),
		HostKeyAlgorithms: p.hostKeyAlgorithms(peer, addr),
		ClientVersion:     p.opts.ClientVersion,
		Config:            ssh.Config{Ciphers: ciphers},
	}, closeAgent
}
