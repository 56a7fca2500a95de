package share

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyAuthorizer decides about client keys that are not in
// --authorized-keys. cmd wires it to peers.Registry, whose AuthorizedKey
// method has exactly this signature; share does not import peers.
type KeyAuthorizer interface {
	// AuthorizedKey reports whether key may log in, and whose it is.
	AuthorizedKey(key ssh.PublicKey) (who string, ok bool)
}

// authorizedKey is one line of an authorized_keys file.
type authorizedKey struct {
	key     ssh.PublicKey
	comment string
}

// loadAuthorizedKeys parses an OpenSSH authorized_keys file. Options on a
// line (from="…", command="…") are not supported and make the line an
// error rather than being silently ignored, since ignoring a restriction
// would grant more than the file says.
func loadAuthorizedKeys(path string) ([]authorizedKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read authorized keys: %w", err)
	}
	var keys []authorizedKey
	for i, raw := range bytes.Split(b, []byte("\n")) {
		line := i + 1
		text := bytes.TrimSpace(raw)
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		key, comment, options, _, err := ssh.ParseAuthorizedKey(text)
		if err != nil {
			return nil, fmt.Errorf("authorized keys %s line %d: %v (want lines like 'ssh-ed25519 AAAA… name')", path, line, err)
		}
		if len(options) > 0 {
			return nil, fmt.Errorf("authorized keys %s line %d: options (%s) are not supported; remove them", path, line, strings.Join(options, ","))
		}
		keys = append(keys, authorizedKey{key: key, comment: comment})
	}
	return keys, nil
}

// passwordAlphabet avoids look-alike characters (0/O, 1/l/I) since the
// password is read off a terminal and typed into FileZilla or WinSCP.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newPassword returns a random password of 20 characters (about 116 bits).
func newPassword() (string, error) {
	const n = 20
	b := make([]byte, n)
	for i := range b {
		// Rejection sampling keeps the distribution uniform.
		for {
			var c [1]byte
			if _, err := rand.Read(c[:]); err != nil {
				return "", fmt.Errorf("generate password: %w", err)
			}
			limit := 256 - 256%len(passwordAlphabet)
			if int(c[0]) < limit {
				b[i] = passwordAlphabet[int(c[0])%len(passwordAlphabet)]
				break
			}
		}
	}
	return string(b), nil
}

// Permissions extension keys set on successful authentication.
const (
	extWho    = "dsftp-who"    // name of the key's owner, or "password"
	extKeyFP  = "dsftp-key-fp" // SHA256 fingerprint of the client key
	extMethod = "dsftp-method" // "publickey" or "password"
)

var errUnknownKey = errors.New("unknown public key")

// checkKey decides a public key login: first the --authorized-keys file,
// then the KeyAuthorizer. It takes no lock of the server's: a slow
// authorizer or a flood of failures on other connections does not stall
// this one.
func (s *Server) checkKey(key ssh.PublicKey) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	want := key.Marshal()
	for _, k := range s.authKeys {
		if bytes.Equal(k.key.Marshal(), want) {
			who := k.comment
			if who == "" {
				who = "authorized-keys"
			}
			return &ssh.Permissions{Extensions: map[string]string{extWho: who, extKeyFP: fp, extMethod: "publickey"}}, nil
		}
	}
	if s.opts.Authorizer != nil {
		if who, ok := s.opts.Authorizer.AuthorizedKey(key); ok {
			return &ssh.Permissions{Extensions: map[string]string{extWho: who, extKeyFP: fp, extMethod: "publickey"}}, nil
		}
	}
	return nil, errUnknownKey
}

// checkPassword compares in constant time. Only called when --password is
// on.
func (s *Server) checkPassword(pw []byte) (*ssh.Permissions, error) {
	if s.password == "" || subtle.ConstantTimeCompare(pw, []byte(s.password)) != 1 {
		return nil, errors.New("wrong password")
	}
	return &ssh.Permissions{Extensions: map[string]string{extWho: "password", extMethod: "password"}}, nil
}
