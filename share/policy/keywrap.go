package policy

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"sync"
)

// gunzipBytes bounds what is decompressed of a gzip file for the key
// scan: its first window, as for a plain file. base64Bytes bounds what is
// decoded of a base64 file: a PEM key of RSA 16384 bits is 17 KiB of
// base64, and decoding is the dearest step of the scan (24 KiB cost
// 35 µs an open, a whole window three times that).
const (
	gunzipBytes = keyScanBytes + scanMargin
	base64Bytes = 24 << 10
)

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzip.Reader) }}
	// unwrapBufs holds the output of a gzip or base64 decoding. There are
	// up to unwrapDepth decodings at once per scan; each takes its own.
	unwrapBufs = sync.Pool{New: func() any { b := make([]byte, gunzipBytes); return &b }}
)

// gzipKey reports why b, the start of a gzip file, decompresses to a
// private key within its first window, or "". A tar.gz of ~/.ssh is one.
func gzipKey(b []byte, depth int) string {
	if len(b) < 10 || b[0] != 0x1f || b[1] != 0x8b {
		return ""
	}
	zr := gzipReaders.Get().(*gzip.Reader)
	defer gzipReaders.Put(zr)
	if err := zr.Reset(bytes.NewReader(b)); err != nil {
		return ""
	}
	bp := unwrapBufs.Get().(*[]byte)
	defer unwrapBufs.Put(bp)
	out := *bp
	n := 0
	var err error
	for n < len(out) && err == nil {
		var m int
		m, err = zr.Read(out[n:])
		n += m
	}
	// io.EOF is a clean end of the last stream: all of it is in out. A
	// corrupt or cut stream still shows what came out before.
	return detectKey(out[:n], errors.Is(err, io.EOF), depth)
}

// base64Key reports why b, when it is all base64 text (lines of the
// standard or URL alphabet), decodes to a private key, or "". A file of
// base64 is the body of a PEM block without its lines, or a PEM key
// passed through base64.
func base64Key(b []byte, whole bool, depth int) string {
	if len(b) > base64Bytes {
		b, whole = b[:base64Bytes], false
	}
	if len(b) < 16 || !allBase64(b) {
		return ""
	}
	enc := base64.StdEncoding
	if bytes.ContainsAny(b, "-_") {
		enc = base64.URLEncoding
	}
	if !bytes.Contains(b, []byte("=")) {
		enc = enc.WithPadding(base64.NoPadding)
	}
	bp := unwrapBufs.Get().(*[]byte)
	defer unwrapBufs.Put(bp)
	out := *bp
	// Decode skips line breaks; on a cut or bad quantum it reports what
	// it decoded before it.
	n, err := enc.Decode(out, b)
	return detectKey(out[:n], whole && err == nil, depth)
}

// allBase64 reports whether b is only base64 characters and line breaks.
func allBase64(b []byte) bool {
	for _, c := range b {
		if !base64Char[c] {
			return false
		}
	}
	return true
}

var base64Char = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=\r\n") {
		t[c] = true
	}
	return t
}()
