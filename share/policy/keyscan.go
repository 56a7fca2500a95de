package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The key scan reads a file in windows of keyScanBytes. Each read goes
// scanMargin past its window so that a marker starting inside the window
// is seen whole even when it ends past it (a PEM BEGIN line is well under
// 1 KiB). A file up to wholeScanBytes is searched all through; a larger
// one in its first and last window (a key appended to a log, or at the
// start of a bundle or archive); their middle is not searched, which
// keeps an open to two reads. DER and PKCS#12 are recognised in a file
// that fits the first window, gzip and base64 from the first window.
const (
	keyScanBytes   = 64 << 10
	scanMargin     = 1 << 10
	wholeScanBytes = 256 << 10
	// unwrapDepth is how many encodings (gzip, base64) are taken off
	// before a key is looked for: base64 of a gzip of a PEM key is two.
	unwrapDepth = 2
)

// The markers that begin a private key in the text and binary forms
// people keep on disk.
var (
	pemBegin    = []byte("-----BEGIN ")
	pemKeyEnd   = []byte("PRIVATE KEY") // "RSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK", ...
	pemDashes   = []byte("-----")
	puttyKey    = []byte("PuTTY-User-Key-File-")
	opensshBlob = []byte("openssh-key-v1\x00") // the decoded OpenSSH format
)

// Every marker is searched for from its first '-': '-' is rarer in text
// than 'o' or 'P' ("openssh…" cost three times as much in English).
var (
	puttyTail   = puttyKey[bytes.IndexByte(puttyKey, '-'):]
	opensshTail = opensshBlob[bytes.IndexByte(opensshBlob, '-'):]
)

// scanBufs holds the buffers of the key scan: one per open otherwise.
var scanBufs = sync.Pool{New: func() any { b := make([]byte, keyScanBytes+scanMargin); return &b }}

// scanFile reports why f, of the given size, holds a private key, or "".
// head, when not nil, is called with the first window (the whole file
// when it fits) before it is searched.
func scanFile(f io.ReaderAt, size int64, head func([]byte) string) (string, error) {
	if size <= 0 {
		return "", nil
	}
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf, err := readWindow(f, *bp, 0, size)
	if err != nil {
		return "", err
	}
	if head != nil {
		if why := head(buf); why != "" {
			return why, nil
		}
	}
	if why := detectKey(buf, int64(len(buf)) == size, unwrapDepth); why != "" {
		return why, nil
	}
	if size <= keyScanBytes+scanMargin {
		return "", nil
	}
	next := func(off int64) (string, error) {
		w, err := readWindow(f, *bp, off, size)
		if err != nil {
			return "", err
		}
		return textKey(w), nil
	}
	if size > wholeScanBytes {
		return next(size - keyScanBytes - scanMargin)
	}
	for off := int64(keyScanBytes); off < size; off += keyScanBytes {
		if why, err := next(off); why != "" || err != nil {
			return why, err
		}
	}
	return "", nil
}

// readWindow reads the window of f at off, with its margin, into buf.
func readWindow(f io.ReaderAt, buf []byte, off, size int64) ([]byte, error) {
	buf = buf[:min(int64(len(buf)), size-off)]
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read for the key scan: %w", err)
	}
	return buf[:n], nil
}

// detectKey reports why b holds a private key, or "". whole says b is
// the whole content (the structured forms are recognised only then).
// depth is how many encodings may still be taken off.
func detectKey(b []byte, whole bool, depth int) string {
	if why := textKey(b); why != "" {
		return why
	}
	if whole {
		if why := derKey(b); why != "" {
			return why
		}
	}
	if depth == 0 {
		return ""
	}
	if why := gzipKey(b, depth-1); why != "" {
		return "gzip of a " + why
	}
	if why := base64Key(b, whole, depth-1); why != "" {
		return "base64 of a " + why
	}
	return ""
}

// textKey reports why b holds the start of a private key in a text or
// OpenSSH binary form: a PEM block "-----BEGIN … PRIVATE KEY-----"
// (OpenSSH, PKCS#1, PKCS#8, EC, DSA, encrypted, PGP), a PuTTY .ppk key,
// or OpenSSH's binary format.
//
// Every marker has a '-': one pass stops at each '-' and tries them all
// there, which costs a third of three bytes.Index passes on binary data.
// Where dashes are dense (ASCII art, tables), it hands over to
// bytes.Index, whose vector search does not stop at each one.
func textKey(b []byte) string {
	for off, hits := 0, 0; ; hits++ {
		i := bytes.IndexByte(b[off:], '-')
		if i < 0 {
			return ""
		}
		at := off + i
		if why := markerAt(b, at); why != "" {
			return why
		}
		off = at + 1
		if hits > 64 && hits > off/32 {
			return textKeyDense(b)
		}
	}
}

// markerAt reports the marker whose first '-' is at b[at], or "".
func markerAt(b []byte, at int) string {
	rest := b[at:]
	switch {
	case bytes.HasPrefix(rest, pemBegin) && pemKeyLabel(rest[len(pemBegin):]):
		return "private key (PEM)"
	case bytes.HasPrefix(rest, puttyTail) && bytes.HasSuffix(b[:at], puttyKey[:len(puttyKey)-len(puttyTail)]):
		return "private key (PuTTY)"
	case bytes.HasPrefix(rest, opensshTail) && bytes.HasSuffix(b[:at], opensshBlob[:len(opensshBlob)-len(opensshTail)]):
		return "private key (OpenSSH binary)"
	}
	return ""
}

// textKeyDense is textKey with a bytes.Index pass per marker.
func textKeyDense(b []byte) string {
	for _, m := range [][]byte{pemBegin, puttyTail, opensshTail} {
		for off := 0; ; {
			i := bytes.Index(b[off:], m)
			if i < 0 {
				break
			}
			if why := markerAt(b, off+i); why != "" {
				return why
			}
			off += i + 1
		}
	}
	return ""
}

// maxPEMLabel bounds the label of a BEGIN line ("ENCRYPTED PRIVATE KEY").
const maxPEMLabel = 64

// pemKeyLabel reports whether b, what follows "-----BEGIN ", is a label
// ending in PRIVATE KEY (or PRIVATE KEY BLOCK, as PGP's) and "-----".
func pemKeyLabel(b []byte) bool {
	end := bytes.Index(b[:min(len(b), maxPEMLabel+len(pemDashes))], pemDashes)
	if end < 0 {
		return false
	}
	label := b[:end]
	return bytes.IndexFunc(label, notLabel) < 0 &&
		(bytes.HasSuffix(label, pemKeyEnd) || bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK")))
}

// notLabel reports a rune that cannot be part of a PEM label's words.
func notLabel(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ')
}
