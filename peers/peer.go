// Package peers knows the other dsftp instances: who they are (Peer), which
// of them are live (Registry), how to find them (discovery subpackages) and
// how to talk to them (the SFTP session pool).
package peers

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Sources of peers, recorded on each Peer.
const (
	SourceFlag    = "flag"    // --peer on the command line
	SourceDiscord = "discord" // an advert in the Discord channel
	SourceLAN     = "lan"     // an advert on the local network
)

// Peer is one remote share and what is needed to reach and trust it.
type Peer struct {
	// ID is the peer's identity: the SHA256 fingerprint of its host key
	// ("SHA256:…"), or for a --peer URL without a pinned key, the URL.
	ID string
	// Name is the name the peer asked for. The registry sanitizes it and
	// makes it unique; see Entry.Name.
	Name string
	// Addrs are host:port candidates, best first.
	Addrs []string
	// User is the SSH user name to log in as.
	User string
	// Path is the remote directory shown as the peer's root ("" means the
	// server's default directory).
	Path string
	// HostKey is the only host key accepted for this peer. When nil,
	// HostKeyFingerprint (if set) or ~/.ssh/known_hosts decides.
	HostKey ssh.PublicKey
	// HostKeyFingerprint pins the host key by its SHA256 fingerprint.
	HostKeyFingerprint string
	// ClientKeys are the keys this peer logs in with; the local share
	// accepts them while the peer is live.
	ClientKeys []ssh.PublicKey
	// Source says where the peer came from (SourceFlag, …).
	Source string
	// AuthorID is the Discord user that posted the advert, if any.
	AuthorID string
	// Origin is who handed us the advert: "discord:" and the user that
	// posted it, or "lan:" and the address it came from. The name book
	// bounds the new names one origin adds (MaxNewNamesPerOrigin).
	Origin string
	// ClientOnly marks an instance that shares nothing (`dsftp get`, or
	// mount/shell with --no-share): it has no addresses and its ID is only
	// its advert's signing key. The registry lets its ClientKeys in like
	// any live peer's, but never lists it nor gives it a display name.
	ClientOnly bool
	// Unreachable is set when the peer's advert says no address of it can
	// be dialed from the internet (no mapping, carrier-grade NAT): others
	// reach it through the members in Via.
	Unreachable bool
	// Via are the IDs of members holding the peer's reverse connections,
	// from its advert: they can open a channel to its share, or relay one.
	Via []string
	// UDP are the candidates (ip:port) of the peer's QUIC path, best
	// first, and NAT what STUN told the peer of its router, from its
	// advert: members punch a path to these (peers/punch).
	UDP []string
	NAT string
	// Relay is the peer's relayed QUIC address on a TURN server, from its
	// advert: the route of last resort (route "turn").
	Relay string
	// Instance identifies the run of dsftp that advertised the peer (from
	// its advert; "" for --peer). A new run with a lasting host key has a
	// new Instance: it has not heard of us yet.
	Instance string
	// Expires is when the peer is dropped unless refreshed; zero never.
	Expires time.Time
	// Updated is when the peer was last added or refreshed.
	Updated time.Time
}

// MaxNameLen caps display names, in bytes.
const MaxNameLen = 64

// SanitizeName turns a requested display name into a safe single path
// component: no '/', NUL or control characters, never "." or "..", valid
// UTF-8 and at most MaxNameLen bytes. An unusable name becomes "peer".
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, r == '/', r == '\\', unicode.IsControl(r):
			b.WriteRune('_')
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		case !unicode.IsPrint(r):
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	for len(s) > MaxNameLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	s = strings.TrimSpace(s)
	if s == "" || strings.Trim(s, ".") == "" {
		return "peer"
	}
	return s
}

// shortID is a path-safe suffix derived from a peer ID, used to make names
// unique: "SHA256:abc/+d…" gives "abcd…" (8 characters).
func shortID(id string) string {
	id = strings.TrimPrefix(id, "SHA256:")
	var b strings.Builder
	for _, r := range id {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			if b.Len() == 8 {
				break
			}
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// Clone returns a deep copy of p's slices so callers cannot alias registry
// state.
func (p Peer) Clone() Peer {
	p.Addrs = slices.Clone(p.Addrs)
	p.ClientKeys = slices.Clone(p.ClientKeys)
	p.Via = slices.Clone(p.Via)
	p.UDP = slices.Clone(p.UDP)
	return p
}
