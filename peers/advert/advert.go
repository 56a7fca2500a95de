// Package advert is the signed, versioned text a dsftp instance posts to say
// how to reach its share:
//
//	dsftp/1 <base64url(JSON)>.<base64url(signature)>
//
// The JSON (see Advert) names the peer, its addresses, its SSH host key, the
// client keys it logs in with, the guild and channel it was posted to, a
// per-run instance ID, a rising sequence number, and when it was issued and
// expires. The signature is made with the SSH host key over
// Domain || JSON, so an advert cannot be mistaken for any other signed
// SSH data, and is carried in SSH wire format (ssh.Signature).
//
// A client-only advert (Client set) comes from an instance that shares
// nothing (`dsftp get`, or mount and shell with --no-share): it is signed
// with a per-run identity key that never serves, carries the client keys
// and no addresses, and only lets those keys in to the receivers' shares;
// receivers do not list it as a peer.
//
// An advert holds no secret: only public keys and addresses. It always fits
// in one Discord message (MaxLen characters).
package advert

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	// Prefix starts every version-1 advert; the version is part of it so
	// a future format is recognised and skipped, not misparsed.
	Prefix = "dsftp/1 "
	// Domain is prepended to the JSON before signing. It separates advert
	// signatures from every other use of the host key.
	Domain = "dsftp advert v1\x00"
	// MaxLen is Discord's message limit, in characters; adverts are ASCII.
	MaxLen = 2000
	// MaxTTL caps Expires-Issued, so a leaked advert cannot live for long.
	MaxTTL = time.Hour
	// MaxSkew is how far in the future Issued may be (clock differences).
	MaxSkew = 5 * time.Minute
	// MaxAddrs and MaxClientKeys bound the lists an advert may carry.
	MaxAddrs      = 16
	MaxClientKeys = 4
	// MaxVia bounds the members an advert names as holding its reverse
	// connections.
	MaxVia = 4
	// MaxUDP bounds the UDP candidates of the share's QUIC path.
	MaxUDP = 8
)

// NAT types an advert may name (NAT): what STUN told the peer about its
// router (peers/punch.NAT).
var natTypes = []string{"none", "cone", "symmetric", "unknown"}

// Advert is the signed content of one advert.
type Advert struct {
	// Name is the display name the peer asks for (the receiver sanitizes
	// it and makes it unique).
	Name string `json:"name"`
	// Addrs are host:port candidates for the peer's SFTP share, best first,
	// IPv6 in brackets ("[2001:db8::1]:2200"). A client-only advert has
	// none.
	Addrs []string `json:"addrs"`
	// Client marks a client-only advert: the instance shares nothing, so
	// HostKey is only its signing identity, Addrs is empty and ClientKeys
	// holds at least one key. Receivers that predate the field ignore it
	// (unknown fields are ignored) and see a share without addresses.
	Client bool `json:"client,omitempty"`
	// User is the SSH user name to log in as ("" lets the client choose).
	User string `json:"user,omitempty"`
	// HostKey is the share's SSH host key in authorized_keys format; it
	// signs the advert and is the only host key clients accept.
	HostKey string `json:"host_key"`
	// ClientKeys are the public keys (authorized_keys format) this peer
	// logs in to other shares with.
	ClientKeys []string `json:"client_keys,omitempty"`
	// Unreachable says that no address in Addrs can be dialed from the
	// internet; Via names (by host key fingerprint) the members that hold
	// this peer's reverse connections. Both are additions within dsftp/1:
	// older receivers ignore them and dial Addrs as before.
	Unreachable bool     `json:"unreachable,omitempty"`
	Via         []string `json:"via,omitempty"`
	// UDP are ip:port candidates of the share's QUIC path, best first:
	// its public address as STUN saw it, its public IPv6 addresses, then
	// local addresses (private IPv4, unique local IPv6). NAT is what
	// STUN told of the router in front of it ("none", "cone", "symmetric",
	// "unknown"; empty without STUN). Members punch a path to these
	// (peers/punch). Additions within dsftp/1: older receivers ignore them.
	UDP []string `json:"udp,omitempty"`
	NAT string   `json:"nat,omitempty"`
	// Relay is the share's relayed QUIC address (ip:port) on a TURN
	// server: a member that can neither dial nor punch this one dials it
	// from its own QUIC endpoint, while this one punches that member's
	// UDP candidates through the relay. The address only; the TURN
	// credentials never leave the member that holds them. An addition
	// within dsftp/1: older receivers ignore it.
	Relay string `json:"relay,omitempty"`
	// Guild and Channel bind the advert to where it was posted, so it
	// cannot be replayed into another channel.
	Guild   string `json:"guild"`
	Channel string `json:"channel"`
	// Instance identifies one run of dsftp (random); Seq rises with every
	// advert that run posts.
	Instance string `json:"instance"`
	Seq      uint64 `json:"seq"`
	// Issued and Expires are Unix seconds.
	Issued  int64 `json:"iat"`
	Expires int64 `json:"exp"`
}

// Errors Decode and Verify return, for callers that count or rate-limit
// reasons.
var (
	ErrNotAdvert = errors.New("not a dsftp/1 advert")
	ErrTooLong   = errors.New("advert longer than 2000 characters")
	ErrMalformed = errors.New("malformed advert")
	ErrSignature = errors.New("advert signature does not verify")
	ErrBinding   = errors.New("advert was made for another guild or channel")
	ErrExpired   = errors.New("advert expired")
	ErrFuture    = errors.New("advert issued in the future")
)

// NewInstance returns a random instance ID (128 bits, base64url).
func NewInstance() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// MarshalKey renders a public key as one authorized_keys line without a
// trailing newline.
func MarshalKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Encode signs a with signer and returns the message text. The host key in
// a is set from signer. It fails if the result exceeds MaxLen, or if a is
// client-only but has addresses or no client key.
func Encode(a Advert, signer ssh.Signer) (string, error) {
	if err := a.checkClient(); err != nil {
		return "", fmt.Errorf("encode advert: %w", err)
	}
	a.HostKey = MarshalKey(signer.PublicKey())
	payload, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode advert: %w", err)
	}
	sig, err := sign(signer, append([]byte(Domain), payload...))
	if err != nil {
		return "", fmt.Errorf("sign advert: %w", err)
	}
	s := Prefix + base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(ssh.Marshal(sig))
	if len(s) > MaxLen {
		return "", fmt.Errorf("encode advert: %d characters: %w", len(s), ErrTooLong)
	}
	return s, nil
}

// sign uses SHA-2 for RSA keys; plain ssh-rsa (SHA-1) is not accepted.
func sign(signer ssh.Signer, data []byte) (*ssh.Signature, error) {
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("RSA host key signer cannot use SHA-256")
		}
		return as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA256)
	}
	return signer.Sign(rand.Reader, data)
}

// Decoded is an advert whose signature verified.
type Decoded struct {
	Advert
	// HostKey and ClientKeys are the parsed keys.
	HostKey    ssh.PublicKey
	ClientKeys []ssh.PublicKey
	// Fingerprint is the host key's SHA256 fingerprint, the peer's ID.
	Fingerprint string
}

// Decode parses text and checks the signature against the host key it
// carries. It does not check binding or time; see Check.
func Decode(text string) (*Decoded, error) {
	if !strings.HasPrefix(text, Prefix) {
		return nil, ErrNotAdvert
	}
	if len(text) > MaxLen {
		return nil, ErrTooLong
	}
	body, sigText, ok := strings.Cut(text[len(Prefix):], ".")
	if !ok {
		return nil, fmt.Errorf("%w: no signature", ErrMalformed)
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	sigBytes, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	var a Advert
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	hostKey, err := parseKey(a.HostKey)
	if err != nil {
		return nil, fmt.Errorf("%w: host key: %v", ErrMalformed, err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBytes, &sig); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if sig.Format == ssh.KeyAlgoRSA || sig.Format == ssh.CertAlgoRSAv01 {
		return nil, fmt.Errorf("%w: SHA-1 RSA signatures are not accepted", ErrSignature)
	}
	if err := hostKey.Verify(append([]byte(Domain), payload...), &sig); err != nil {
		return nil, ErrSignature
	}
	if len(a.Addrs) > MaxAddrs || len(a.ClientKeys) > MaxClientKeys || len(a.Via) > MaxVia || len(a.UDP) > MaxUDP {
		return nil, fmt.Errorf("%w: too many addresses or keys", ErrMalformed)
	}
	if a.Instance == "" || a.Seq == 0 || a.Guild == "" || a.Channel == "" {
		return nil, fmt.Errorf("%w: missing instance, seq, guild or channel", ErrMalformed)
	}
	if err := a.checkClient(); err != nil {
		return nil, err
	}
	d := &Decoded{Advert: a, HostKey: hostKey, Fingerprint: ssh.FingerprintSHA256(hostKey)}
	for _, s := range a.ClientKeys {
		k, err := parseKey(s)
		if err != nil {
			return nil, fmt.Errorf("%w: client key: %v", ErrMalformed, err)
		}
		d.ClientKeys = append(d.ClientKeys, k)
	}
	d.Addrs = slices.DeleteFunc(slices.Clone(a.Addrs), func(s string) bool { return !validAddr(s) })
	d.Via = slices.DeleteFunc(slices.Clone(a.Via), func(s string) bool { return !validFingerprint(s) })
	d.UDP = slices.DeleteFunc(slices.Clone(a.UDP), func(s string) bool { return !validAddrPort(s) })
	if !validAddrPort(d.Relay) {
		d.Relay = ""
	}
	if !slices.Contains(natTypes, d.NAT) {
		d.NAT = ""
	}
	return d, nil
}

// checkClient rejects a client-only advert that names addresses (it would
// be a share in disguise) or carries no client key (it would mean nothing).
func (a *Advert) checkClient() error {
	if a.Client && len(a.Addrs) > 0 {
		return fmt.Errorf("%w: a client-only advert carries no addresses", ErrMalformed)
	}
	if a.Client && len(a.ClientKeys) == 0 {
		return fmt.Errorf("%w: a client-only advert without client keys", ErrMalformed)
	}
	return nil
}

// Check verifies that d was made for guild and channel and is live at now.
func (d *Decoded) Check(guild, channel string, now time.Time) error {
	if d.Guild != guild || d.Channel != channel {
		return ErrBinding
	}
	iat, exp := time.Unix(d.Issued, 0), time.Unix(d.Expires, 0)
	if iat.After(now.Add(MaxSkew)) {
		return ErrFuture
	}
	if !exp.After(now) || exp.Sub(iat) > MaxTTL || exp.Before(iat) {
		return ErrExpired
	}
	return nil
}

func parseKey(s string) (ssh.PublicKey, error) {
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one key")
	}
	if _, isCert := k.(*ssh.Certificate); isCert {
		return nil, errors.New("certificates are not accepted")
	}
	return k, nil
}

// validFingerprint accepts "SHA256:" and 43 base64 characters.
func validFingerprint(s string) bool {
	rest, ok := strings.CutPrefix(s, "SHA256:")
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawStdEncoding.DecodeString(rest)
	return err == nil
}

// validAddrPort accepts a literal IP address and port, the only form a
// UDP candidate takes (nothing to resolve before punching). IPv6 goes in
// brackets, without a zone (meaningful only on the sender's host) and not
// link-local (useless without one) or IPv4-mapped (IPv4 goes as itself).
func validAddrPort(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return false
	}
	a := ap.Addr()
	return !a.IsUnspecified() && !a.IsMulticast() && validIP(a)
}

// validIP rejects what no member elsewhere could send to at all.
func validIP(a netip.Addr) bool {
	return a.Zone() == "" && !a.Is4In6() && !a.IsLinkLocalUnicast()
}

// validAddr accepts host:port with a short, printable host name or IP
// address and a port from 1 to 65535; an IPv6 address goes in brackets and
// passes validIP. Anything else is dropped rather than handed to the
// dialer.
func validAddr(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '/' {
			return false
		}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return false
	}
	if strings.HasPrefix(s, "[") || strings.Contains(host, ":") {
		// Brackets hold an IPv6 address and nothing else.
		a, err := netip.ParseAddr(host)
		return err == nil && a.Is6() && validIP(a)
	}
	return true
}
