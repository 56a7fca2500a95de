package route

// Channel types and global requests of dsftp's routes.
const (
	// ChannelShare carries a complete SSH connection to the share of the
	// member that holds the outer connection as its client: for relays,
	// and for holders reading from a member that predates ChannelSFTP.
	ChannelShare = "dsftp-ssh@dsftp"
	// ChannelSFTP is an SFTP session with the share of the member that
	// holds the outer connection as its client (reverse), opened by the
	// member that holds it for its own reads: no inner SSH, since the
	// outer connection already authenticated both ends (SFTPOpen).
	ChannelSFTP = "dsftp-sftp@dsftp"
	// ChannelRelay asks a member to pipe the channel to the share of the
	// member named by fingerprint (RelayRequest).
	ChannelRelay = "dsftp-relay@dsftp"
	// RequestReverse is the global request of a member that offers its
	// share over the connection it dialed (ReverseRequest).
	RequestReverse = "dsftp-reverse@dsftp"
	// RequestDialBack asks the share to dial the requester's advertised
	// addresses and say which answered with its host key
	// (DialBackRequest; the reply payload is a DialBackReply).
	RequestDialBack = "dsftp-dialback@dsftp"
	// DialBackUser prefixes the user name of the one "none" login attempt
	// a checker makes at an address that answered with the requester's
	// host key; the rest is that address's nonce, which tells the
	// requester's share that the dial really arrived. A checker sends it
	// to no other host key.
	DialBackUser = "dsftp-dialback-"
)

// DialBackRequest is the payload of a RequestDialBack global request:
// host:port addresses, one per line, and a nonce for each, one per line
// in the same order.
type DialBackRequest struct{ Addrs, Nonces string }

// DialBackAddrs is a RequestDialBack payload without nonces (Addrs
// only): the checker's dials then stop after the host key.
type DialBackAddrs struct{ Addrs string }

// DialBackReply answers a RequestDialBack: the addresses that answered
// with the requester's host key, one per line. The requester believes
// only the nonces that arrived; the reply is informational.
type DialBackReply struct{ Reached string }

// RelayRequest is the payload of a ChannelRelay open.
type RelayRequest struct{ Target string }

// ShareOpen is the payload of a ChannelShare open made for a relay: the
// fingerprint of the client key the relay's member logged in to the
// holder with. The share counts that connection's pre-login limits and
// penalties against it (as named by this holder) instead of the holder's
// address. An empty payload, as the holder's own reads send, counts
// against the holder.
type ShareOpen struct{ ClientKey string }

// SFTPOpen is the payload of a ChannelSFTP open: channels with the same
// Conn number are the sessions of one connection to the share (they share
// its handles and limits), as the sessions of one SSH login are.
type SFTPOpen struct{ Conn uint32 }

// ReverseRequest is the payload of a RequestReverse global request: the
// host key fingerprint of the share offered.
type ReverseRequest struct{ HostKey string }
