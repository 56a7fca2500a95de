//go:build linux

package lan_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// testCodec stands in for the signed advert of peers/advert in these
// tests: the same shape (JSON signed by the host key over domain-separated
// bytes, "dsftp/1 <b64 json>.<b64 sig>"), but test-only code.
type testCodec struct {
	mu       sync.Mutex
	name     string
	host     ssh.Signer
	client   ssh.Signer
	instance string
	seq      uint64
	addrs    []string
	now      func() time.Time // nil: time.Now
	mute     bool             // Encode fails: the peer goes silent
}

const testDomain = "dsftp-test-advert\x00"

type testAdvert struct {
	Name       string    `json:"name"`
	Addrs      []string  `json:"addrs"`
	HostKey    []byte    `json:"host_key"`
	ClientKeys [][]byte  `json:"client_keys"`
	Instance   string    `json:"instance"`
	Seq        uint64    `json:"seq"`
	Issued     time.Time `json:"issued"`
	Expires    time.Time `json:"expires"`
}

func newTestCodec(t testing.TB, name string, addrs ...string) *testCodec {
	var inst [8]byte
	rand.Read(inst[:])
	return &testCodec{
		name: name, host: testenv.NewSigner(t), client: testenv.NewSigner(t),
		instance: fmt.Sprintf("%x", inst), addrs: addrs,
	}
}

func (c *testCodec) ID() string { return ssh.FingerprintSHA256(c.host.PublicKey()) }

func (c *testCodec) Encode(ttl time.Duration) ([]byte, error) {
	c.mu.Lock()
	if c.mute {
		c.mu.Unlock()
		return nil, errors.New("muted")
	}
	c.seq++
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	a := testAdvert{
		Name: c.name, Addrs: c.addrs, HostKey: c.host.PublicKey().Marshal(),
		ClientKeys: [][]byte{c.client.PublicKey().Marshal()},
		Instance:   c.instance, Seq: c.seq, Issued: now, Expires: now.Add(ttl),
	}
	c.mu.Unlock()
	return signAdvert(a, c.host)
}

func signAdvert(a testAdvert, by ssh.Signer) ([]byte, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	sig, err := by.Sign(rand.Reader, append([]byte(testDomain), body...))
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	return []byte("dsftp/1 " + enc.EncodeToString(body) + "." + enc.EncodeToString(ssh.Marshal(sig))), nil
}

func decodeAdvert(msg []byte) (testAdvert, []byte, *ssh.Signature, error) {
	var a testAdvert
	rest, ok := bytes.CutPrefix(msg, []byte("dsftp/1 "))
	if !ok {
		return a, nil, nil, errors.New("not a dsftp/1 advert")
	}
	b64body, b64sig, ok := strings.Cut(string(rest), ".")
	if !ok {
		return a, nil, nil, errors.New("no signature")
	}
	enc := base64.RawURLEncoding
	body, err := enc.DecodeString(b64body)
	if err != nil {
		return a, nil, nil, err
	}
	rawSig, err := enc.DecodeString(b64sig)
	if err != nil {
		return a, nil, nil, err
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(rawSig, sig); err != nil {
		return a, nil, nil, err
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, nil, nil, err
	}
	return a, body, sig, nil
}

func (c *testCodec) Verify(msg []byte) (lan.Advert, error) {
	a, body, sig, err := decodeAdvert(msg)
	if err != nil {
		return lan.Advert{}, err
	}
	hk, err := ssh.ParsePublicKey(a.HostKey)
	if err != nil {
		return lan.Advert{}, err
	}
	if err := hk.Verify(append([]byte(testDomain), body...), sig); err != nil {
		return lan.Advert{}, fmt.Errorf("bad signature: %w", err)
	}
	if !a.Expires.After(time.Now()) {
		return lan.Advert{}, errors.New("expired")
	}
	var cks []ssh.PublicKey
	for _, k := range a.ClientKeys {
		ck, err := ssh.ParsePublicKey(k)
		if err != nil {
			return lan.Advert{}, err
		}
		cks = append(cks, ck)
	}
	return lan.Advert{
		Peer: peers.Peer{
			ID: ssh.FingerprintSHA256(hk), Name: a.Name, Addrs: a.Addrs, HostKey: hk,
			ClientKeys: cks, Expires: a.Expires,
		},
		Instance: a.Instance, Seq: a.Seq,
	}, nil
}
