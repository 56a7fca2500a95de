package lan

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"golang.org/x/crypto/ssh"
)

// LAN adverts carry these in place of Discord's guild and channel IDs
// (which are numbers), so a LAN advert cannot be replayed into a Discord
// channel, nor a channel's advert onto the LAN.
const (
	AdvertGuild   = "lan"
	AdvertChannel = "lan"
)

// AdvertCodec is the Codec of the real signed advert (peers/advert), the
// same format Discord discovery posts, bound to the LAN.
type AdvertCodec struct {
	signer     ssh.Signer
	name, user string
	clientKeys []string
	client     bool // client-only: no addresses
	instance   string
	now        func() time.Time

	mu    sync.Mutex
	seq   uint64
	addrs []string
}

// NewAdvertCodec returns a codec that signs adverts with the share's host
// key, naming the peer name, the SSH user to log in as (may be empty) and
// the client keys this instance logs in to others with.
func NewAdvertCodec(hostKey ssh.Signer, name, user string, clientKeys []ssh.PublicKey) *AdvertCodec {
	c := &AdvertCodec{
		signer: hostKey, name: name, user: user,
		instance: advert.NewInstance(), now: time.Now,
	}
	for _, k := range clientKeys {
		c.clientKeys = append(c.clientKeys, advert.MarshalKey(k))
	}
	return c
}

// NewClientCodec returns a codec for an instance that shares nothing: it
// signs client-only adverts (advert.Advert.Client) with identity, a per-run
// key that never serves, carrying clientKeys and no addresses. Peers let
// those keys in but do not list the instance.
func NewClientCodec(identity ssh.Signer, name string, clientKeys []ssh.PublicKey) *AdvertCodec {
	c := NewAdvertCodec(identity, name, "", clientKeys)
	c.client = true
	return c
}

// NewVerifyCodec returns a codec that only verifies adverts, for a
// listener (Options.ListenOnly); its Encode fails.
func NewVerifyCodec() *AdvertCodec {
	return &AdvertCodec{now: time.Now}
}

// SetAddrs sets the host:port addresses the next adverts carry (none for
// a client codec).
func (c *AdvertCodec) SetAddrs(addrs []string) {
	if c.client {
		return
	}
	c.mu.Lock()
	c.addrs = append([]string(nil), addrs...)
	c.mu.Unlock()
}

// Instance returns this run's instance ID.
func (c *AdvertCodec) Instance() string { return c.instance }

// Encode implements Codec.
func (c *AdvertCodec) Encode(ttl time.Duration) ([]byte, error) {
	if c.signer == nil {
		return nil, errors.New("lan advert codec: verify-only, cannot sign")
	}
	now := c.now()
	c.mu.Lock()
	c.seq++
	a := advert.Advert{
		Name: c.name, Addrs: c.addrs, User: c.user, ClientKeys: c.clientKeys, Client: c.client,
		Guild: AdvertGuild, Channel: AdvertChannel,
		Instance: c.instance, Seq: c.seq,
		Issued: now.Unix(), Expires: now.Add(ttl).Unix(),
	}
	c.mu.Unlock()
	s, err := advert.Encode(a, c.signer)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// Verify implements Codec: signature, LAN binding and expiry.
func (c *AdvertCodec) Verify(msg []byte) (Advert, error) {
	d, err := advert.Decode(string(msg))
	if err != nil {
		return Advert{}, err
	}
	if err := d.Check(AdvertGuild, AdvertChannel, c.now()); err != nil {
		return Advert{}, fmt.Errorf("advert from %s: %w", d.Fingerprint, err)
	}
	return Advert{
		Peer:     d.Peer(peers.SourceLAN),
		Instance: d.Instance, Seq: d.Seq,
	}, nil
}
