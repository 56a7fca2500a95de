// Package share serves one directory read-only over SSH/SFTP.
//
// Every file access goes through an os.Root, so the client sees the
// directory as "/" and cannot leave it: not with "..", not with absolute
// paths, not through symlinks. Every write-like request is refused with
// SSH_FX_PERMISSION_DENIED. Files are opened with O_NOATIME where the kernel
// allows it, so serving them leaves no trace on disk.
//
// The SSH side is x/crypto/ssh with an ed25519 host key (per run unless
// pinned), public-key auth (an authorized_keys file plus a KeyAuthorizer,
// e.g. the live peers of a Discord channel), an optional per-run password,
// AES-GCM ciphers only (chacha20 is much slower in Go), and limits
// against hostile clients: before login, per-source and random early drop
// limits, a short grace for silent connections and penalties for sources
// that fail or stall; after it, caps per key and per source, an idle
// timeout, and a bound on requests in flight (so on memory); see the
// SECURITY.md (beside this file) for every limit.
package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"github.com/dsftp/dsftp/share/policy"
	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values in Options.
const (
	DefaultListen               = ":2200"
	DefaultMaxConns             = limits.DefaultMaxConns
	DefaultMaxConnsPerKey       = limits.DefaultMaxConnsPerKey
	DefaultMaxConnsPerSource    = limits.DefaultMaxConnsPerSource
	DefaultMaxStartupsPerSource = limits.DefaultMaxStartupsPerSource
	DefaultMaxSessions          = 4
	DefaultMaxHandlesPerConn    = 512
	DefaultMaxRequestsPerConn   = limits.DefaultMaxRequestsPerConn
	DefaultMaxAuthTries         = 6
	DefaultLoginGrace           = 20 * time.Second
	DefaultVersionGrace         = 5 * time.Second
	DefaultIdleTimeout          = 10 * time.Minute
	DefaultPenaltyMax           = limits.DefaultPenaltyMax

	// shutdownGrace bounds how long Serve waits for connections to wind
	// down after its context ends, well inside the 2 s promise.
	shutdownGrace = 1500 * time.Millisecond

	// maxReadData is the largest read answered in one SSH_FXP_DATA packet:
	// the 256 KiB message limit of OpenSSH's sftp client minus the 9 bytes
	// of type, request id and data length. Clients asking for 255 KiB get
	// it in one packet; one asking for a full 256 KiB gets a short read,
	// which every client handles, instead of a "message too long" abort.
	maxReadData = 256*1024 - 9
)

// Startups is limits.Startups, so that the share's callers set
// Options.MaxStartups (and parse the flag) without importing limits.
type Startups = limits.Startups

// DefaultStartups is 16:30:64.
var DefaultStartups = limits.DefaultStartups

// IgnoreFile in the share's root lists paths not to share, in gitignore
// syntax (see policy).
const IgnoreFile = policy.IgnoreFile

// Options configure a Server. Zero values pick the defaults above.
type Options struct {
	// Dir is the directory to share. It must exist and be readable.
	Dir string
	// Listen is the TCP address to listen on. Empty means ":2200" (IPv4
	// and IPv6), or when that port is taken the next free one up to
	// 2219, else any free port (Server.PortNote says which). ":0" picks a
	// free port; Port and Addrs report it.
	Listen string
	// ShareHidden serves hidden files and directories (a name starting
	// with "."). Off by default: dotfiles and dot-directories are where
	// keys, tokens and shell history live.
	ShareHidden bool
	// SecretFiles are files never served whatever else the rules say:
	// dsftp's Discord token file and host key file, and copies of them.
	// Files holding a private key are refused anyway (see policy).
	SecretFiles []string
	// SecretDirs are directories whose files are never served under any
	// name: a hard link into them is refused. Nil means ~/.ssh, ~/.gnupg
	// and dsftp's configuration directory ($XDG_CONFIG_HOME/dsftp); an
	// empty slice, none.
	SecretDirs []string
	// SelfClientVersion is the SSH version line this process's own client
	// sends. A connection with it from one of this machine's addresses
	// that ends before a login is this process dialing a peer's address
	// that is its own share here: logged at debug, no penalty.
	SelfClientVersion string
	// ExcludeMounts returns absolute mountpoints that are never served,
	// nor anything below them: dsftp's own FUSE mounts, which would
	// otherwise loop peers through each other's shares. It is called
	// about once a second. Nil excludes none.
	ExcludeMounts func() []string
	// HostKeyFile pins the host key: an OpenSSH private key file, created
	// (ed25519, mode 0600) if missing. Empty means a new key every run.
	HostKeyFile string
	// AuthorizedKeysFile is an OpenSSH authorized_keys file whose keys may
	// log in. Empty means none from a file.
	AuthorizedKeysFile string
	// Password turns on password logins with a random password made for
	// this run (see Server.Password). Off by default: keys only.
	Password bool
	// Authorizer is asked about client keys not in AuthorizedKeysFile,
	// e.g. a peers.Registry. Nil means only the file's keys.
	Authorizer KeyAuthorizer
	// Logger receives one line per connection and per auth result. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Extensions serve the global requests and the channel types other
	// than "session" of logged-in connections (extensions.go): dsftp's
	// routes between members. Nil refuses them all.
	Extensions Extensions
	// Probe reports whether user, the user name of a connection that
	// tries no login but "none", names a probe the share's owner expects
	// (a member's dial-back check arriving): such a connection is not
	// penalised. Nil expects none.
	Probe func(user string) bool
	// MaxConns caps concurrent logged-in connections; 0 means
	// DefaultMaxConns.
	MaxConns int
	// MaxConnsPerKey caps logged-in connections with one client key, so
	// that one key (anyone's, on the LAN) cannot take every slot.
	// Password logins are capped per source only. 0 means
	// DefaultMaxConnsPerKey.
	MaxConnsPerKey int
	// MaxConnsPerSource caps logged-in connections from one IPv4 address
	// or IPv6 /64; 0 means DefaultMaxConnsPerSource.
	MaxConnsPerSource int
	// MaxStartups is start:rate:full for connections that have not logged
	// in yet (see Startups); zero means DefaultStartups.
	MaxStartups Startups
	// MaxStartupsPerSource caps connections logging in at once from one
	// source; a new one beyond it takes the place of the source's oldest
	// connection that has not sent its version line, or is closed at once
	// if there is none (see limits). 0 means DefaultMaxStartupsPerSource.
	MaxStartupsPerSource int
	// MaxSessionsPerConn caps SSH channels per connection; 0 means
	// DefaultMaxSessions.
	MaxSessionsPerConn int
	// MaxHandlesPerConn caps open files and directories per connection;
	// 0 means DefaultMaxHandlesPerConn.
	MaxHandlesPerConn int
	// MaxRequestsPerConn caps the SFTP requests a connection may have
	// waiting for their replies (each session may have one more); the
	// server stops reading from a session at its cap (see limits). 0
	// means DefaultMaxRequestsPerConn.
	MaxRequestsPerConn int
	// MaxAuthTries is the number of failed login attempts after which a
	// connection is closed; 0 means DefaultMaxAuthTries.
	MaxAuthTries int
	// LoginGrace is how long a connection may take to log in; 0 means
	// DefaultLoginGrace.
	LoginGrace time.Duration
	// VersionGrace is how long a new connection may take to send its SSH
	// version line; silent connections are closed after it. 0 means
	// DefaultVersionGrace.
	VersionGrace time.Duration
	// IdleTimeout closes logged-in connections that have no open file or
	// directory and sent no request for this long. 0 means
	// DefaultIdleTimeout; negative, never.
	IdleTimeout time.Duration
	// PenaltyMax is the longest a source that fails or stalls logins is
	// kept out (see limits). 0 means DefaultPenaltyMax; negative turns
	// penalties off.
	PenaltyMax time.Duration
}

// setDefaults fills the fields left zero (negative counts too) with
// their defaults.
func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxConnsPerKey <= 0 {
		o.MaxConnsPerKey = DefaultMaxConnsPerKey
	}
	if o.MaxConnsPerSource <= 0 {
		o.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if o.MaxStartups == (Startups{}) {
		o.MaxStartups = DefaultStartups
	}
	if o.MaxStartupsPerSource <= 0 {
		o.MaxStartupsPerSource = DefaultMaxStartupsPerSource
	}
	if o.MaxSessionsPerConn <= 0 {
		o.MaxSessionsPerConn = DefaultMaxSessions
	}
	if o.MaxHandlesPerConn <= 0 {
		o.MaxHandlesPerConn = DefaultMaxHandlesPerConn
	}
	if o.MaxRequestsPerConn <= 0 {
		o.MaxRequestsPerConn = DefaultMaxRequestsPerConn
	}
	if o.MaxAuthTries <= 0 {
		o.MaxAuthTries = DefaultMaxAuthTries
	}
	if o.LoginGrace <= 0 {
		o.LoginGrace = DefaultLoginGrace
	}
	if o.VersionGrace <= 0 {
		o.VersionGrace = DefaultVersionGrace
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.PenaltyMax == 0 {
		o.PenaltyMax = DefaultPenaltyMax
	}
}

// Server is a read-only SFTP server for one directory.
type Server struct {
	opts     Options
	log      *slog.Logger
	view     *policy.View // what clients see of Dir
	portNote string       // why the port is not the default one, if so
	signer   ssh.Signer
	password string
	authKeys []authorizedKey
	config   *ssh.ServerConfig

	gate *limits.Gate

	mu       sync.Mutex
	ln       net.Listener
	live     map[io.Closer]struct{} // every accepted connection, for shutdown
	shutdown bool

	wg sync.WaitGroup

	// testHookRead is handed to every session's handlers (see
	// fsHandlers.testHookRead). Set before Serve; tests only.
	testHookRead func(p string)
	// testHookPacketConn sees every connection's packetConn. Tests only.
	testHookPacketConn func(*packetConn)
}

// New checks the options, opens the shared directory and loads or makes
// the host key. It does not listen yet.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	gate, err := limits.New(limits.Options{
		MaxConns:             opts.MaxConns,
		MaxConnsPerKey:       opts.MaxConnsPerKey,
		MaxConnsPerSource:    opts.MaxConnsPerSource,
		MaxStartups:          opts.MaxStartups,
		MaxStartupsPerSource: opts.MaxStartupsPerSource,
		MaxRequestsPerConn:   opts.MaxRequestsPerConn,
		PenaltyMax:           opts.PenaltyMax,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, gate: gate, live: map[io.Closer]struct{}{}}
	raiseFileLimit(s.log)

	view, err := policy.New(policy.Options{
		Dir:           opts.Dir,
		ShareHidden:   opts.ShareHidden,
		SecretFiles:   opts.SecretFiles,
		SecretDirs:    opts.SecretDirs,
		ExcludeMounts: opts.ExcludeMounts,
		Logger:        s.log,
	})
	if err != nil {
		return nil, err
	}
	s.view = view

	if opts.HostKeyFile != "" {
		s.signer, err = loadOrCreateHostKey(opts.HostKeyFile)
	} else {
		s.signer, err = newHostKey()
	}
	if err != nil {
		view.Close()
		return nil, err
	}
	if opts.AuthorizedKeysFile != "" {
		if s.authKeys, err = loadAuthorizedKeys(opts.AuthorizedKeysFile); err != nil {
			view.Close()
			return nil, err
		}
	}
	if opts.Password {
		if s.password, err = newPassword(); err != nil {
			view.Close()
			return nil, err
		}
	}
	s.config = s.sshConfig()
	return s, nil
}

// IgnoreRules is the number of rules read from the share's .dsftpignore.
func (s *Server) IgnoreRules() int { return s.view.IgnoreRules() }

// ReloadIgnore re-reads the share's .dsftpignore at once (it is otherwise
// looked at once a second) and returns the number of rules in force; if
// the file cannot be read, the previous rules stay, and the error says
// why.
func (s *Server) ReloadIgnore() (int, error) { return s.view.ReloadIgnore() }

// ShareHidden reports whether hidden files are served.
func (s *Server) ShareHidden() bool { return s.opts.ShareHidden }

// sshConfig builds the SSH server configuration shared by all
// connections; connConfig adds the per-connection auth callbacks.
func (s *Server) sshConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			// AES-GCM only. The client's preference order decides, and
			// OpenSSH lists chacha20-poly1305 and then AES-CTR before
			// AES-GCM: offering either would make every default OpenSSH
			// client and sshfs pick a cipher that Go runs several times
			// slower (chacha20) or with a separate MAC (CTR). Every client
			// from 2021 on speaks AES-GCM (OpenSSH 6.2+, PuTTY 0.76+,
			// WinSCP 5.19+, FileZilla 3.56+).
			Ciphers: []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM},
			MACs:    []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM, ssh.HMACSHA256, ssh.HMACSHA512},
		},
		MaxAuthTries:  s.opts.MaxAuthTries,
		ServerVersion: "SSH-2.0-dsftp",
	}
	cfg.AddHostKey(s.signer)
	return cfg
}

// connConfig returns the configuration for one connection. Its callbacks
// log one line per auth result, with the key fingerprint: the public key
// callback remembers the key being tried and the auth log callback, which
// runs once per real attempt (not for "would this key do?" queries that
// succeed), reports the outcome. Refusals are rate-limited per source (see
// logLimiter). State is per connection, so nothing is shared or locked
// across connections during login; auth tallies the attempts for the
// penalty if the login fails.
func (s *Server) connConfig(src limits.Source, auth *authTally) *ssh.ServerConfig {
	cfg := *s.config
	var lastKey string
	cfg.PublicKeyCallback = func(cm ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		lastKey = ssh.FingerprintSHA256(key)
		return s.checkKey(key)
	}
	if s.password != "" {
		cfg.PasswordCallback = func(cm ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			return s.checkPassword(pw)
		}
	}
	cfg.AuthLogCallback = func(cm ssh.ConnMetadata, method string, err error) {
		if method == "none" {
			// Every client starts with it; not an attempt. An
			// expected probe says who it is here.
			auth.probe = auth.probe || (s.opts.Probe != nil && s.opts.Probe(cm.User()))
			return
		}
		auth.attempts++
		outcome := "accepted"
		if err != nil {
			outcome = "refused"
			auth.failures++
			if method == "password" {
				auth.password = true
			}
		}
		attrs := []any{"remote", cm.RemoteAddr().String(), "user", cm.User(), "method", method}
		switch {
		case method != "publickey":
		case err == nil:
			attrs = append(attrs, "key", lastKey)
		default:
			// Not "key": anyone can try any number of keys, and the log
			// limiter keeps each "key" apart.
			attrs = append(attrs, "tried_key", lastKey)
		}
		// Never the password itself, not even a wrong one (it may be a
		// real password typed into the wrong window).
		s.log.Info("auth", append(attrs, "outcome", outcome)...)
	}
	return &cfg
}

// fallbackPorts are tried, in order, when Options.Listen is empty and the
// default port is taken (another dsftp on this machine); then any port.
const firstFallbackPort, lastFallbackPort = 2201, 2219

// Listen binds the listening socket. Serve calls it if it was not called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.opts.Listen != "" {
		ln, err := net.Listen("tcp", s.opts.Listen)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("listen on %s: port %s is already in use (another dsftp share?); pick another with --listen :PORT, or --listen :0 for a free one", s.opts.Listen, portString(s.opts.Listen))
			}
			return fmt.Errorf("listen on %s: %w; check --listen", s.opts.Listen, err)
		}
		s.ln = ln
		return nil
	}
	ln, err := net.Listen("tcp", DefaultListen)
	for p := firstFallbackPort; errors.Is(err, syscall.EADDRINUSE) && p <= lastFallbackPort+1; p++ {
		addr := ":" + strconv.Itoa(p)
		if p > lastFallbackPort {
			addr = ":0"
		}
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w; pick an address with --listen", DefaultListen, err)
	}
	if port := ln.Addr().(*net.TCPAddr).Port; strconv.Itoa(port) != portString(DefaultListen) {
		s.portNote = fmt.Sprintf("port %s is taken (another dsftp on this machine?), so this share uses %d", portString(DefaultListen), port)
	}
	s.ln = ln
	return nil
}

// PortNote says why the share listens on another port than the default,
// or is "".
func (s *Server) PortNote() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.portNote
}

// Addrs returns the addresses the server listens on (nil before Listen).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return []net.Addr{s.ln.Addr()}
}

// Port returns the TCP port the server listens on (0 before Listen).
func (s *Server) Port() int {
	for _, a := range s.Addrs() {
		if ta, ok := a.(*net.TCPAddr); ok {
			return ta.Port
		}
	}
	return 0
}

// HostSigner returns the host key, e.g. for discovery to sign adverts.
func (s *Server) HostSigner() ssh.Signer { return s.signer }

// HostKey returns the public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// Fingerprint returns the host key's SHA256:… fingerprint.
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.signer.PublicKey()) }

// Password returns the per-run password, or "" unless Options.Password.
// Show it on the local terminal only; never log or send it.
func (s *Server) Password() string { return s.password }

// Dir returns the real path of the shared directory.
func (s *Server) Dir() string { return s.view.Dir() }

// Serve accepts connections until ctx is done, then stops accepting,
// closes every connection and returns within about 1.5 s. It returns nil
// after ctx ends, or the error that stopped the listener.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		s.closeAll()
	}()

	acceptErr := s.acceptLoop(ctx, ln)
	s.closeAll()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.log.Warn("shutdown: some connections did not finish in time")
	}
	return acceptErr
}

// track records a live connection; false once shutdown began.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.live[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, c)
}

// closeAll stops the listener and closes every connection; their
// goroutines then end on their own.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	s.shutdown = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.live {
		c.Close()
	}
	s.view.Close()
}

// portString is the port part of a listen address, for messages.
func portString(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if _, err := strconv.Atoi(p); err != nil {
		return addr
	}
	return p
}

// Close releases the shared directory of a server that will not Serve (or
// ends a running one, like cancelling Serve's context).
func (s *Server) Close() error {
	s.closeAll()
	return nil
}
