package punch

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// ALPN is the only application protocol the endpoint speaks: one SSH
// connection per QUIC stream.
const ALPN = "dsftp/1"

// serverTLS returns the listener's TLS 1.3 configuration: a certificate
// made for this process only, and, when the endpoint has an ID, a refusal
// of any handshake whose server name is not addressed to it (a dial that
// met the wrong host, or this host itself, behind a LAN address that two
// homes share).
func serverTLS(id string) (*tls.Config, error) {
	cert, err := ephemeralCert()
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
	}
	if id != "" {
		want := idHash(id)
		conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			to, _, ok := parseServerName(hello.ServerName)
			if !ok || to != want {
				return nil, errors.New("handshake not addressed to this member")
			}
			return nil, nil
		}
	}
	return conf, nil
}

// clientTLS is the dialer's configuration. The certificate is not checked:
// it proves nothing (every process makes its own), and the SSH connection
// inside each stream checks the peer's advertised host key, as over TCP.
func clientTLS(self, peer string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		ServerName:         ServerName(peer, self),
		InsecureSkipVerify: true, // authentication is the SSH host key inside the stream
	}
}

// ephemeralCert makes a self-signed ed25519 certificate valid for a day
// around now.
func ephemeralCert() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make TLS serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		DNSNames:     []string{"dsftp"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// idHash shortens an ID (a host key fingerprint) to 16 hex digits for the
// server name: enough to tell the members of a channel apart, and it keeps
// the fingerprint itself out of the ClientHello.
func idHash(id string) string {
	h := sha256.Sum256([]byte("dsftp-punch-id\x00" + id))
	return hex.EncodeToString(h[:8])
}

// ServerName addresses a handshake from member from to member to (their
// IDs): "TO.FROM.dsftp", each an idHash. The acceptor refuses names not
// addressed to it, and a punch recognises the peer's dial by the FROM
// part.
func ServerName(to, from string) string {
	return idHash(to) + "." + idHash(from) + ".dsftp"
}

// parseServerName splits a server name made by serverName.
func parseServerName(name string) (to, from string, ok bool) {
	parts := strings.Split(name, ".")
	if len(parts) != 3 || parts[2] != "dsftp" || !isHash(parts[0]) || !isHash(parts[1]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func isHash(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
