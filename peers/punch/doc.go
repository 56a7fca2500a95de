// Package punch is dsftp's UDP path: QUIC (quic-go) on one UDP socket per
// instance, which accepts connections, dials, punches through NAT and asks
// STUN servers for its public address, all from the same local port.
//
// # Streams
//
// Every stream a peer opens on a QUIC connection is one SSH connection,
// handed out by [Endpoint.Accept] as a net.Conn whose addresses are the
// connection's UDP addresses; the share serves it like a TCP connection
// (share.ServeStream), so its host key, client keys, confinement and every
// per-source, per-key and pre-login limit apply unchanged. A connection
// carries up to 16 streams (Config.MaxStreams), so one punched path serves
// both directions: either side opens streams on it ([Path.OpenStream]) to
// read the other's share.
//
// # Authentication
//
// TLS 1.3 with ALPN "dsftp/1" and a self-signed certificate made for the
// process: QUIC needs TLS, but the certificate proves nothing and is not
// checked. The authentication is SSH's, inside each stream: the client
// checks the host key the peer advertised and the share checks the client
// key, exactly as over TCP. The TLS server name addresses the handshake
// ("TO.FROM.dsftp", 64-bit hashes of both IDs): an endpoint refuses
// handshakes meant for another member, so a dial that meets the wrong host
// (two homes with the same LAN prefix) or this host itself fails at once.
//
// # Punching
//
// Both members call [Endpoint.Punch] with the other's candidates (its
// local addresses and the public one STUN learnt) when they see each
// other's adverts. Each dials every candidate from the listening socket;
// the QUIC Initial packets going out open its own NAT towards the other,
// so the other's packets, arriving later, get through, and quic-go's
// retransmissions carry on until one handshake completes. No extra message
// is sent. The first handshake that completes, in either direction, is
// used; when both complete, both keep the connection dialed by the member
// with the smaller ID (host key fingerprint), and the other member closes
// the one it dialed (a side waits up to 500 ms for the preferred one once
// the other has completed). An incoming connection counts as the peer's
// when its server name says it comes from the peer and its source IP is
// one of the peer's candidates. Both members must start within the punch's
// context (the caller's deadline). The dialer sends QUIC keep-alives every
// 25 s, which hold both NAT mappings while the path is in use; a path that
// hears nothing for 75 s is closed.
//
// Punching works between any two NATs that give one internal socket the
// same public port towards every destination (endpoint-independent
// mapping, Linux masquerade, carrier-grade NAT of that kind). It fails
// when both members are behind a symmetric NAT (a new port per
// destination) and, with routers that only let in replies from the exact
// address and port a packet went to (Linux, most home routers), when one
// is: the port STUN learnt is not the one the peer's packets meet. [Hint]
// says what helps (an open port on one side).
//
// # IPv6
//
// The socket listens on both families when bound to the IPv6 wildcard
// ("[::]:2200", what a share on ":2200" gets). A public IPv6 address
// (peers.PublicIPv6: global unicast, not unique local fc00::/7, not
// link-local) needs no NAT and no STUN: it is a candidate as it is. A
// stateful IPv6 firewall (what home routers run: replies let in, new
// connections from outside dropped) is punched like a NAT: each member's
// Initial packets to the other's IPv6 addresses let the other's packets
// in. This works whatever the IPv4 NATs of the two are (symmetric ones
// included), and only when the packets leave from an address the peer
// has among the candidates, which is why every public IPv6 address is
// advertised, temporary ones too.
//
// # TURN
//
// When punching cannot work (a symmetric NAT on either side, see
// [Classify] and [Hint]), a member with a TURN server (RFC 8656, pion/turn
// client over UDP, long-term credentials) allocates a relayed address
// there ([ListenRelay]) and runs a second endpoint on it: the same QUIC,
// limits, Retry, server-name check and SSH inside, on the relay's
// net.PacketConn, with packets kept at 1280 bytes (no path MTU
// discovery: TURN's framing rides on top). The server forwards to the
// relay only packets from addresses the allocating side has sent to
// (TURN permissions, per IP), so the allocating member punches the
// peer's public candidates from the relay endpoint, which creates them,
// while the peer punches the relayed address from its own endpoint; the
// first handshake that completes is the path, as above. pion refreshes
// the allocation, the permissions and the channel bindings; [Relay.Lost]
// tells when a refresh of the allocation failed. The credentials appear
// in no advert, log line or error ([TURNServer] prints as
// turn://HOST:PORT); the server sees only QUIC packets whose streams
// carry SSH.
//
// # STUN
//
// [Endpoint.Discover] sends STUN binding requests (pion/stun) from the QUIC
// socket; quic-go hands over the packets that are not QUIC. By default it
// asks [DefaultSTUN]: Google's stun.l.google.com:19302 and Cloudflare's
// stun.cloudflare.com:3478. A server learns the public address and port of
// the socket (from the packet itself) and nothing else; the request carries
// no name or key. Two servers tell a symmetric NAT from the others
// ([Classify]). A dual-stack socket asks a server over IPv4 if it has an
// IPv4 address, so that the answers tell of the IPv4 NAT; a server with
// only an IPv6 address is asked over IPv6. [Endpoint.WatchPublic] asks again every 25 s (below the 30 s
// after which common routers forget an idle UDP mapping) and reports
// changes. An answer counts only from the address asked and with the
// transaction ID of a request in flight (at most 64).
//
// # Bounds
//
// Retry (QUIC address validation) is on for every source: a handshake
// costs memory only after the source has shown that it receives at its
// address. A source is an IPv4 address or an IPv6 /64, as for the share's
// limits. At most 64 incoming handshakes are in progress (4 per source)
// and at most 64 incoming connections live (8 per source); beyond that
// the listener refuses (CONNECTION_REFUSED) before allocating a
// connection. Strangers, sources that are none of a live member's UDP
// candidates ([Config.Member]), get at most 32 of the handshakes and 32
// of the connections, so that handshakes and connections from many
// addresses that never log in cannot keep members out. A source that the
// share refuses for failed or stalled logins ([Config.Refuse]) is refused
// at the handshake too, before it costs a connection. A handshake ends
// after 10 s without a packet from the client, and after 20 s at most
// (quic-go's handshake timeout is twice its idle timeout).
//
// A source at its 8 connections is not locked out by connections that
// carry nothing (idle.go): a newcomer from it takes the place of its
// oldest connection that has had no stream open for 0.5 s, which is
// closed (application error 0x1d1e). So a friend behind an attacker's
// address (one carrier-grade NAT) still gets in, unless the attacker
// opens a new connection every 0.5 s for each of the source's slots.
//
// A connection carries at most 16 streams at once. Each stream is one SSH
// connection that the share counts against the connection's source
// address like a TCP connection: before login at most 8 per source and 64
// in all (--max-startups), with the same version and login graces and
// penalties, so streams that never speak are cut after 5 s and their
// source is then refused for a while. Streams from a member's source
// (share.Server.ServeMemberStream) count against 64 pre-login slots of
// their own instead, so strangers' silent streams do not keep members out.
//
// Each connection's receive buffers are at most 8 MiB (4 MiB per stream),
// so data that a peer sends and nobody reads holds at most 64 x 8 MiB =
// 512 MiB in the worst case; in practice the SSH server inside reads only
// what its channel windows and pre-login limits allow. quic-go keeps at
// most 32 non-QUIC packets queued for the STUN reader, and 1024
// unprocessed packets for the listener. A datagram that is neither part of
// a connection nor a valid Initial is dropped; an Initial without a token
// gets a Retry, smaller than the Initial (no amplification); nothing of
// this is logged. Measured by cmd/dsftp's attack_quic_test.go with a share
// on loopback: 10,000 Initials and garbage datagrams a second, from 8
// addresses or from one, cost 0.2 of a core and about 4 MiB, and 144
// stalled handshakes, 240 idle connections or 240 connections of silent
// streams from 24 addresses raised the share's RSS by at most 12 MiB
// while a member logged in each time.
//
// # Throughput
//
// SSH over a QUIC stream costs more CPU than SSH over TCP: quic-go sends
// packets of at most 1452 bytes (its fixed limit; path MTU discovery
// starts at 1280), encrypts each one (TLS 1.3 AES-GCM, beside SSH's own
// cipher, which stays: the certificate authenticates nothing) and
// acknowledges every second one, all in user space, where TCP on loopback
// moves 64 KiB segments in the kernel. quic-go already sends with GSO and
// ECN where Linux has them and asks for 7 MiB UDP socket buffers (as root
// it forces them; otherwise net.core.rmem_max and wmem_max cap them and
// quic-go logs a warning). On loopback (BenchmarkSSHTransfer, `make
// bench-quic`) SSH over QUIC takes 2.4 to 2.8 times the CPU per GiB of SSH
// over TCP, both ends counted (6.2 against 2.3 s per GiB), so where the
// CPU is the limit it reads at a third to a half of TCP's speed. The socket
// buffers are not the limit (the kernel dropped no datagram), nor are the
// windows: the stream and connection windows stay at 4 and 8 MiB, as
// larger ones did not read faster, and initial windows equal to the
// maximum would let a peer that is never read fill the whole bound at
// once.
//
// Over a long path the link decides. At RTT 30 ms and 100 Mbit/s each way
// (BenchmarkWANRead, through testdata/wanproxy) a 32 MiB read over QUIC
// takes 1.05 times as long as over TCP on a connection that has carried
// data before and 1.10 times on a new one (medians of 5; 2.9 and 3.0 s
// against TCP's 2.75 s and the link's floor of 2.74 s): quic-go's
// congestion control (NewReno, starting at 32 packets) has to find the
// rate, which TCP through wanproxy does not (the proxy ends TCP on each
// side). On a loaded machine the difference grows: when the round trip
// jumps by 4 ms early in a transfer, quic-go's hybrid slow start ends at
// a small window, and NewReno then grows it by one packet per round trip;
// such a read took up to 3 times as long. Direct TCP comes first in the
// route order (route.Rank); a punched path serves the members that TCP
// reaches only through a reverse connection or a relay.
//
// # In dsftp
//
// cmd/internal/instance (quic.go, punched.go) runs one Endpoint per share
// on the TCP listener's port number (--udp-port another, --no-quic none;
// a UDP port that is taken is one warning, TCP works as before), with the
// host key fingerprint as ID, the sources of live members' UDP candidates
// as members (Config.Member; IPv6 by /64), and hands every stream to
// share.ServeStream. WatchPublic runs with the --stun servers (DefaultSTUN
// unless given; --stun none: off); the bring-up waits up to 2 s for the
// first answer, so the first advert already carries the public address.
// Adverts carry the candidates (the public address first, then the
// public IPv6 addresses, the one the kernel sends from first, then the
// local addresses: private IPv4, unique local IPv6; all with the UDP port;
// the local ones are dropped first when the advert runs out of room) and
// the NAT type (peers/advert: udp, nat); a change re-posts the advert, the
// same answer every 25 s posts nothing, and the addresses are read again
// every minute. A member punches to another as soon as it sees that
// member's advert (or when its own candidates change), when one of the two
// cannot be dialed and either both have a public IPv6 address or neither
// NAT defeats punching: both do so from the same adverts, so no message is
// needed to start together. At most 4 punches
// run in the background at once, each for up to 20 s; at most 32 paths
// are kept (the least recently used is closed beyond); a path closes when
// its member leaves; one that closes while the member is live, or a punch
// that failed, is tried again within seconds, backing off to a minute
// (both members notice a closed path and punch again). The pool (route
// "punched", between direct and reverse in route.Rank) opens one stream
// per SSH connection on the path; a member that cannot be punched is
// reported with [Hint]. With --turn (turn.go there) the member holds a
// relay, advertises its address (advert: relay) and allocates anew, at
// most every 6 minutes, when the server forgot it; a pair that cannot
// punch uses the relay of one of them (the one with the smaller ID when
// both hold one) as route "turn", the last in route.Rank.
package punch
