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
// says what helps (TURN, or an open port on one side).
//
// # STUN
//
// [Endpoint.Discover] sends STUN binding requests (pion/stun) from the QUIC
// socket; quic-go hands over the packets that are not QUIC. By default it
// asks [DefaultSTUN]: Google's stun.l.google.com:19302 and Cloudflare's
// stun.cloudflare.com:3478. A server learns the public address and port of
// the socket (from the packet itself) and nothing else; the request carries
// no name or key. Two servers tell a symmetric NAT from the others
// ([Classify]). [Endpoint.WatchPublic] asks again every 25 s (below the 30 s
// after which common routers forget an idle UDP mapping) and reports
// changes. An answer counts only from the address asked and with the
// transaction ID of a request in flight (at most 64).
//
// # Bounds
//
// Retry (QUIC address validation) is on for every source: a handshake
// costs memory only after the source has shown that it receives at its
// address. At most 64 incoming handshakes are in progress (4 per source
// IP), each ends within 10 s, and at most 64 incoming connections live (8
// per source IP); beyond that the listener refuses (CONNECTION_REFUSED)
// before allocating a connection. Each connection's receive buffers are at
// most 8 MiB (4 MiB per stream), so data that a peer sends and nobody
// reads holds at most 64 x 8 MiB = 512 MiB in the worst case; in practice
// the SSH server inside reads only what its channel windows and pre-login
// limits allow. quic-go keeps at most 32 non-QUIC packets queued for the
// STUN reader, and 1024 unprocessed packets for the listener.
package punch
