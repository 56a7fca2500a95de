package sftpwire

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
)

// benchSize is the file BenchmarkRead reads per op; benchBuf the reads it
// makes (the pool's chunk).
const (
	benchSize = 32 << 20
	benchBuf  = 1 << 20
)

// server is a way to reach an SFTP server for a benchmark.
type server struct {
	name  string
	start func(tb testing.TB) (io.WriteCloser, io.Reader)
}

var servers = []server{
	{"pkgsftp-server", func(tb testing.TB) (io.WriteCloser, io.Reader) { c := pkgServer(tb); return c, c }},
	{"openssh-server", opensshServer},
}

// BenchmarkRead reads a 32 MiB file whole, in 1 MiB reads, through this
// package and through pkg/sftp's client (File.ReadAt with the same reads,
// and File.WriteTo into io.Discard). Requests are 32 KiB, what pkg/sftp's
// client asks and its server answers; "sftpwire-255K" is what the pool
// asks of OpenSSH, which answers up to 255 KiB.
func BenchmarkRead(b *testing.B) {
	p, _ := testFile(b, benchSize)
	for _, s := range servers {
		b.Run(s.name+"/sftpwire", func(b *testing.B) { benchWire(b, s, p, 32<<10) })
		if s.name == "openssh-server" {
			b.Run(s.name+"/sftpwire-255K", func(b *testing.B) { benchWire(b, s, p, 255<<10) })
		}
		b.Run(s.name+"/pkgsftp-ReadAt", func(b *testing.B) {
			f := pkgOpen(b, s, p)
			buf := make([]byte, benchBuf)
			loop(b, func() {
				for off := int64(0); off < benchSize; off += benchBuf {
					if n, err := f.ReadAt(buf, off); n != benchBuf || (err != nil && err != io.EOF) {
						b.Fatalf("ReadAt = %d, %v", n, err)
					}
				}
			})
		})
		b.Run(s.name+"/pkgsftp-WriteTo", func(b *testing.B) {
			f := pkgOpen(b, s, p)
			loop(b, func() {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					b.Fatal(err)
				}
				if n, err := f.WriteTo(io.Discard); n != benchSize || err != nil {
					b.Fatalf("WriteTo = %d, %v", n, err)
				}
			})
		})
	}
}

// loop runs op b.N times, reporting MB/s of the file and allocations.
func loop(b *testing.B, op func()) {
	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		op()
	}
}

func benchWire(b *testing.B, s server, p string, piece int) {
	w, r := s.start(b)
	c := startChanOn(b, w, r)
	h, err := c.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchBuf)
	loop(b, func() {
		for off := int64(0); off < benchSize; off += benchBuf {
			if n, err := c.ReadAt(h, buf, off, piece); n != benchBuf || err != nil {
				b.Fatalf("ReadAt = %d, %v", n, err)
			}
		}
	})
}

func startChanOn(b *testing.B, w io.WriteCloser, r io.Reader) *Chan {
	c, err := Start(w, r, w.Close)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func pkgClient(b *testing.B, s server) *sftp.Client {
	w, r := s.start(b)
	cl, err := sftp.NewClientPipe(r, w)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

func pkgOpen(b *testing.B, s server, p string) *sftp.File {
	f, err := pkgClient(b, s).Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkReadDir lists a directory of 10,000 empty files through this
// package and through pkg/sftp's Client.ReadDir.
func BenchmarkReadDir(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range servers {
		b.Run(s.name+"/sftpwire", func(b *testing.B) {
			w, r := s.start(b)
			c := startChanOn(b, w, r)
			dirLoop(b, func() int {
				es, _, err := c.ReadDir(context.Background(), dir, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				return len(es)
			})
		})
		b.Run(s.name+"/pkgsftp-ReadDir", func(b *testing.B) {
			cl := pkgClient(b, s)
			dirLoop(b, func() int {
				fis, err := cl.ReadDir(dir)
				if err != nil {
					b.Fatal(err)
				}
				return len(fis)
			})
		})
	}
}

func dirLoop(b *testing.B, list func() int) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got := list(); got != 10000 {
			b.Fatalf("%d entries; want 10000", got)
		}
	}
	b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "entries/s")
}
