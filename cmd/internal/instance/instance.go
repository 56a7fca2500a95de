// Package instance is the one bring-up and shutdown of a dsftp process,
// for every command (share, mount, shell, get; List for peers): the
// share or a per-run identity, the registry, the session pool, the own
// advert, Discord, LAN and UPnP. Each long-running part runs as a
// Run(ctx) error under one errgroup: the first to fail stops the others,
// and Wait returns its error once all have stopped.
package instance

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/dsftp/dsftp/cmd/internal/client"
	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/share"
)

// Config says what one dsftp process runs. Nil parts are off.
type Config struct {
	// Share is served read-only; its host key is the instance's identity.
	// Nil: the instance shares nothing and advertises a client-only advert
	// signed with a per-run key.
	Share *share.Options
	// ShareHint, when set, prefixes an error starting the share with what
	// to do instead.
	ShareHint string
	// Mountpoint is this process's own mount, never served by its share
	// (nor is any other dsftp mount).
	Mountpoint string
	// Pool opens the sessions to the peers' shares (mount, shell, get);
	// its key is advertised as our client key.
	Pool *pool.Options
	// Peers are the --peer peers, in the registry from the start.
	Peers []peers.Peer
	// RememberNames keeps which key held each peer name across runs (see
	// useNameBook).
	RememberNames bool
	// Discover is asked, with the registry holding Peers, whether to start
	// discovery at all; nil means yes.
	Discover func(*peers.Registry) bool
	// Name is the name the adverts carry.
	Name string
	// Discord advertises in and reads the channel; Start fills in the
	// advertising parts (Signer, ClientKeys, Addrs, ClientOnly, Registry).
	Discord *discord.Config
	// DiscordInBackground starts Discord after Start returns, so the
	// caller answers at once; failing to start is then logged, not fatal.
	DiscordInBackground bool
	// LAN announces on and listens to the local network.
	LAN *LAN
	// Reach maps the share's port with UPnP and prints the advertised
	// addresses now and whenever they change (only with Share).
	Reach *Reach
	// Out receives the share banner and the advertised addresses, Err the
	// notices and warnings for the user.
	Out, Err io.Writer
	// Logger logs the bring-up and discovery; nil means slog.Default().
	Logger *slog.Logger
}

// LAN configures LAN discovery.
type LAN struct {
	Port       int
	Interfaces []string
	// Defaulted says LAN discovery is on only because no Discord token is
	// configured; the user is told so once listening.
	Defaulted bool
}

// Reach configures the port mapping and the advertised addresses.
type Reach struct {
	NoUPnP bool
	// Advertise are checked --advertise values (reach.ParseAdvertise).
	Advertise []string
	// Lease is the UPnP lease; zero means the default.
	Lease time.Duration
	// NoRelay, RelayRate and ReverseConns shape the routes through other
	// members (routes.go): --no-relay, --relay-rate (bytes per second, 0:
	// no cap), --reverse-conns.
	NoRelay      bool
	RelayRate    int64
	ReverseConns int
	// NoQUIC keeps the share off UDP (--no-quic); UDPPort is the UDP port
	// of the QUIC endpoint (--udp-port; zero: the TCP listener's port
	// number); STUN are the servers asked for its public address
	// (punch.ParseSTUN; nil: none). See quic.go.
	NoQUIC  bool
	UDPPort int
	STUN    []string
	// TURN are the --turn servers (punch.ParseTURN), tried in order for a
	// relayed address (turn.go); nil: none.
	TURN []punch.TURNServer
}

// SettleWindow is how long after discovery started it counts as still
// settling: adverts of the peers already online arrive within it.
const SettleWindow = 5 * time.Second

// Instance is a started dsftp process.
type Instance struct {
	// Registry holds the live peers; the share lets their client keys in.
	Registry *peers.Registry
	// Pool is nil without Config.Pool.
	Pool *pool.Pool
	// Share is nil when the instance shares nothing.
	Share *share.Server
	// Discovering is set when Discord or LAN discovery runs.
	Discovering bool

	cfg    Config
	log    *slog.Logger
	self   self
	ctx    context.Context
	cancel context.CancelFunc
	g      *errgroup.Group

	routes        *route.Table
	reachable     atomic.Bool // an advertised address can be dialed from the internet
	public        atomic.Pointer[[]string]
	dialBack      atomic.Pointer[dialBackResult]
	recheck       chan struct{}
	via           atomic.Pointer[[]string]
	discord       atomic.Pointer[discord.Discovery]
	lanSettle     time.Time
	discordSettle atomic.Int64  // unix nanos; 0 while Discord starts
	started       bool          // Start returned it
	stopping      atomic.Int64  // unix nanos when the instance began to stop
	took          time.Duration // the stop, once Wait returned
	mount         atomic.Pointer[fs.Mount]
	quic          *punch.Endpoint               // the share's UDP path, nil when off
	udp           atomic.Pointer[udpCandidates] // what adverts say of it
	paths         *paths                        // punched paths to peers
	turns         *paths                        // paths through TURN relays, nil without --turn
	relay         atomic.Pointer[punch.Relay]   // our TURN allocation, while we hold one
	clientVersion string                        // our pool's SSH version line, known to our share
}

// clientVersion is an SSH version line of this run only, by which the
// share knows the pool of its own process when it dials a peer's address
// that is this machine.
func clientVersion() string {
	return "SSH-2.0-dsftp_" + rand.Text()[:8]
}

// Start brings the instance up: the share (bound, banner printed), the
// registry, the pool, then LAN discovery (listening), Discord (first
// advert posted, unless in the background) and the port mapping. It
// returns when all of that is up; ctx ending stops everything.
func Start(ctx context.Context, cfg Config) (_ *Instance, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Instance{cfg: cfg, log: cfg.Logger, recheck: make(chan struct{}, 1), clientVersion: clientVersion()}
	if err := in.startShare(); err != nil {
		return nil, err
	}
	ctx, in.cancel = context.WithCancel(ctx)
	in.g, in.ctx = errgroup.WithContext(ctx)
	context.AfterFunc(in.ctx, func() { in.stopping.CompareAndSwap(0, time.Now().UnixNano()) })
	defer func() {
		if err != nil {
			in.cancel()
			in.Wait()
		}
	}()
	in.Registry = peers.NewRegistry(in.self.id())
	if cfg.RememberNames {
		useNameBook(in.Registry, in.log)
	}
	for _, p := range cfg.Peers {
		in.Registry.Upsert(p)
	}
	in.g.Go(func() error { in.Registry.Run(in.ctx); return nil })
	if in.Share != nil {
		in.g.Go(in.serve)
		in.startQUIC()
	}
	if cfg.Pool != nil {
		po := *cfg.Pool
		in.routeOptions(&po)
		in.punchOptions(&po)
		po.ClientVersion = in.clientVersion
		po.Suspects = in.Registry
		if in.Share != nil {
			po.SelfID = in.self.id()
		}
		if in.Pool, err = pool.New(po); err != nil {
			return nil, err
		}
		in.self.clientKeys = []ssh.PublicKey{in.Pool.PublicKey()}
		context.AfterFunc(in.ctx, func() { in.Pool.Close() })
	}
	if cfg.Discover != nil && !cfg.Discover(in.Registry) {
		in.started = true
		return in, nil
	}
	in.startTURN()
	if err := in.startDiscovery(); err != nil {
		return nil, err
	}
	if err := in.startReach(); err != nil {
		return nil, err
	}
	in.startReverse()
	in.startPunching()
	in.startDialBack()
	in.started = true
	return in, nil
}

// startShare starts the share, or makes the per-run identity of an
// instance that shares nothing.
func (in *Instance) startShare() error {
	if in.cfg.Share == nil {
		id, err := newIdentity()
		if err != nil {
			return err
		}
		in.self = clientSelf(id)
		return nil
	}
	opts := *in.cfg.Share
	// The registry decides which client keys (live peers' keys) may log
	// in; without peers to read or discovery there is nobody to ask.
	if in.cfg.Pool != nil || in.cfg.Discord != nil || in.cfg.LAN != nil {
		opts.Authorizer = authorizerFunc(func(k ssh.PublicKey) (string, bool) { return in.Registry.AuthorizedKey(k) })
	}
	opts.ExcludeMounts = excludeMounts(in.cfg.Mountpoint)
	opts.SelfClientVersion = in.clientVersion
	in.shareRoutes(&opts)
	// Without --host-key the key lasts in the configuration directory; it
	// is never served either.
	if opts.HostKeyFile == "" {
		opts.HostKeyFile = DefaultHostKeyFile(slog.Default())
	}
	if opts.HostKeyFile != "" {
		opts.SecretFiles = append(slices.Clip(opts.SecretFiles), opts.HostKeyFile)
	}
	srv, err := startShare(opts, in.audience(opts), in.cfg.Out)
	if err != nil {
		if in.cfg.ShareHint != "" {
			return fmt.Errorf("%s: %w", in.cfg.ShareHint, err)
		}
		return err
	}
	in.Share = srv
	in.self = shareSelf(srv)
	// The banner says the same to a person; scripts and tests read this.
	in.log.Info("share ready", "port", srv.Port(), "host_key", srv.Fingerprint(), "dir", srv.Dir())
	return nil
}

// serve runs the share. A command that only shares ends when its share
// fails; one that also reads peers logs it and keeps reading them.
func (in *Instance) serve() error {
	err := in.Share.Serve(in.ctx)
	if err != nil && in.cfg.Pool != nil {
		in.log.Error("share stopped", "err", err)
		return nil
	}
	return err
}

// startDiscovery starts LAN discovery, then Discord: a LAN peer may
// answer while Discord reads history and posts.
func (in *Instance) startDiscovery() error {
	if in.cfg.LAN != nil {
		if err := in.startLAN(); err != nil {
			return err
		}
		in.lanSettle = time.Now().Add(SettleWindow)
		in.Discovering = true
	}
	if in.cfg.Discord == nil {
		return nil
	}
	in.Discovering = true
	if !in.cfg.DiscordInBackground {
		d, err := in.startDiscord()
		if err != nil {
			return err
		}
		in.discordSettle.Store(time.Now().Add(SettleWindow).UnixNano())
		in.g.Go(func() error { return runDiscord(in.ctx, d) })
		return nil
	}
	in.g.Go(func() error {
		d, err := in.startDiscord()
		if err != nil {
			in.log.Error("Discord discovery failed; only --peer peers are available", "err", err)
			in.discordSettle.Store(1)
			return nil
		}
		in.discordSettle.Store(time.Now().Add(SettleWindow).UnixNano())
		return runDiscord(in.ctx, d)
	})
	return nil
}

// Settling reports whether discovery is still collecting the peers that
// are online, so a short list of peers may grow.
func (in *Instance) Settling() bool {
	now := time.Now()
	if in.cfg.LAN != nil && in.Discovering && now.Before(in.lanSettle) {
		return true
	}
	if in.cfg.Discord == nil || !in.Discovering {
		return false
	}
	at := in.discordSettle.Load()
	return at == 0 || now.UnixNano() < at
}

// Go runs the command's own work (mount, shell, download); when it
// returns, the instance stops.
func (in *Instance) Go(main func(ctx context.Context) error) {
	in.g.Go(func() error {
		defer in.cancel()
		return main(in.ctx)
	})
}

// Wait returns once every part has stopped (ctx ended, the command's work
// returned, or a part failed), with the first error; then it closes the
// pool and the share.
func (in *Instance) Wait() error {
	err := in.g.Wait()
	in.cancel()
	if in.Pool != nil {
		in.Pool.Close()
	}
	if in.Share != nil {
		in.Share.Close()
	}
	if at := in.stopping.Load(); at != 0 {
		in.took = time.Since(time.Unix(0, at))
	}
	if in.started {
		in.log.Info("stopped", "took", in.took.Round(time.Millisecond))
	}
	return err
}

// StopTime is how long the instance took to stop, from the signal (or
// the first part ending) until Wait had closed everything.
func (in *Instance) StopTime() time.Duration { return in.took }

// Remote is the client side of the instance: its peers through its pool,
// settling while discovery collects them.
func (in *Instance) Remote() *client.Remote {
	return client.New(client.Options{Registry: in.Registry, Pool: in.Pool, Settling: in.Settling})
}

// Mount mounts the instance's peers at dir until ctx ends or the file
// system is unmounted from outside; opts need no Registry or Pool.
func (in *Instance) Mount(ctx context.Context, dir string, opts fs.Options) error {
	opts.Registry, opts.Pool = in.Registry, fs.PoolRemote(in.Pool)
	m, err := fs.New(dir, opts)
	if err != nil {
		return err
	}
	in.mount.Store(m)
	in.log.Info("mounted", "mountpoint", dir, "peers", len(in.Registry.List()),
		"client_key", ssh.FingerprintSHA256(in.Pool.PublicKey()))
	fmt.Fprintf(in.cfg.Out, "mounted at %s\n", dir)
	return m.Run(ctx)
}

// ReloadOn reloads (see Reload) on every signal from sigs until the
// instance stops.
func (in *Instance) ReloadOn(sigs <-chan os.Signal) {
	in.g.Go(func() error {
		for {
			select {
			case <-in.ctx.Done():
				return nil
			case sig := <-sigs:
				in.Reload(sig.String())
			}
		}
	})
}

// Reload forgets what the mount cached, so every peer is asked again, and
// re-reads the share's .dsftpignore at once; why names the cause, for
// the log.
func (in *Instance) Reload(why string) {
	attrs := []any{"on", why}
	if m := in.mount.Load(); m != nil {
		m.FlushCaches()
		attrs = append(attrs, "caches", "flushed")
	}
	if in.Share != nil {
		n, err := in.Share.ReloadIgnore()
		if err != nil {
			in.log.Warn("keeping the previous ignore rules", "err", err)
		}
		attrs = append(attrs, "ignore_file", share.IgnoreFile, "rules", n)
	}
	in.log.Info("reloaded", attrs...)
}

// authorizerFunc adapts a function to share.KeyAuthorizer.
type authorizerFunc func(ssh.PublicKey) (string, bool)

func (f authorizerFunc) AuthorizedKey(k ssh.PublicKey) (string, bool) { return f(k) }
