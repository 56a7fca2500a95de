package advert

import (
	"time"

	"github.com/dsftp/dsftp/peers"
)

// Peer is the registry entry a verified advert stands for, as found by
// source (peers.SourceDiscord, peers.SourceLAN): its keys, addresses and
// expiry. The source adds what only it knows (who posted it, where from).
func (d *Decoded) Peer(source string) peers.Peer {
	return peers.Peer{
		ID: d.Fingerprint, Name: d.Name, Addrs: d.Addrs, User: d.User,
		HostKey: d.HostKey, ClientKeys: d.ClientKeys, ClientOnly: d.Client,
		Unreachable: d.Unreachable, Via: d.Via, UDP: d.UDP, NAT: d.NAT, Relay: d.Relay, Instance: d.Instance,
		Source: source, Expires: time.Unix(d.Expires, 0),
	}
}
