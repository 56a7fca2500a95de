//go:build linux

package download_test

import (
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/cmd/internal/download"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// BenchmarkGet downloads a 64 MiB file from a real sshd on loopback with
// the pool's read-ahead pipeline (what dsftp get uses) and, for
// comparison, with pkg/sftp's own concurrent WriteTo.
func BenchmarkGet(b *testing.B) {
	const size = 64 << 20
	share := b.TempDir()
	writeRandom(b, filepath.Join(share, "big.bin"), size)
	s := testenv.StartSSHD(b, share)
	p, err := peers.ParsePeerFlag("alice=" + s.URL())
	if err != nil {
		b.Fatal(err)
	}
	pl, err := pool.New(pool.Options{Identities: []ssh.Signer{s.Client.Signer}})
	if err != nil {
		b.Fatal(err)
	}
	defer pl.Close()
	for _, bc := range []struct {
		name string
		src  download.Source
	}{
		{"pool", &download.PoolSource{Pool: pl, Peer: func() (peers.Peer, error) { return p, nil }}},
		{"sftp", &sftpSource{Client: dialSSHD(b, s), Root: share}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := download.Get(b.Context(), bc.src, "/big.bin", b.TempDir(), download.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
