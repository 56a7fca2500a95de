package sftpwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pkg/sftp"
)

// This file holds every parser of bytes from the peer. Each checks a
// declared length against what the packet holds (and the packet against
// MaxPacket) before it allocates or loops, so a hostile length field costs
// an error, not memory.

// extension is one name/data pair of a VERSION reply.
type extension struct{ name, data string }

// readVersion reads the VERSION reply to INIT (it carries no request id)
// and checks that the server speaks version 3, as pkg/sftp does.
func readVersion(r *bufio.Reader) ([]extension, error) {
	var b [5]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(b[:4])
	if b[4] != fxpVersion {
		return nil, fmt.Errorf("unexpected packet type %d", b[4])
	}
	if l < 5 || l > MaxPacket {
		return nil, fmt.Errorf("bad packet length %d", l)
	}
	body := make([]byte, l-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return parseVersion(body)
}

// parseVersion parses a VERSION body: the version, then extension pairs.
func parseVersion(body []byte) ([]extension, error) {
	f := fields{b: body}
	v, err := f.u32()
	if err != nil {
		return nil, err
	}
	if v != version {
		return nil, fmt.Errorf("server speaks version %d, not %d", v, version)
	}
	var exts []extension
	for len(f.b) > 0 {
		name, err := f.str()
		if err != nil {
			return nil, err
		}
		data, err := f.str()
		if err != nil {
			return nil, err
		}
		exts = append(exts, extension{string(name), string(data)})
	}
	return exts, nil
}

// status is a STATUS reply.
type status struct {
	code uint32
	msg  string
}

// parseStatus parses a STATUS body: the code, then optionally the message
// (some servers send only the code; the language tag is ignored). The
// message is cut to maxMessage bytes.
func parseStatus(body []byte) (status, error) {
	if len(body) < 4 {
		return status{}, errors.New("short sftp status")
	}
	s := status{code: binary.BigEndian.Uint32(body)}
	f := fields{b: body[4:]}
	if msg, err := f.str(); err == nil {
		s.msg = string(msg[:min(len(msg), maxMessage)])
	}
	return s, nil
}

// err is the status as an error: nil for OK, io.EOF at the end, the
// os errors a file system maps, and ErrStatus for the rest.
func (s status) err() error {
	switch s.code {
	case fxOK:
		return nil
	case fxEOF:
		return io.EOF
	case fxNoSuch:
		return errNotExist
	case fxPermDeny:
		return errPermission
	}
	return fmt.Errorf("sftp: %q (status %d): %w", s.msg, s.code, ErrStatus)
}

// parseHandle parses a HANDLE body.
func parseHandle(body []byte) (string, error) {
	f := fields{b: body}
	h, err := f.str()
	if err != nil || len(h) == 0 || len(h) > maxHandle {
		return "", errors.New("bad sftp handle")
	}
	return string(h), nil
}

// readData reads the rest of a DATA reply whose header said rest bytes
// follow: the data's length, then the data, straight into buf. Data beyond
// len(buf) is dropped; it returns the bytes put into buf.
func readData(r *bufio.Reader, rest int, buf []byte) (int, error) {
	if rest < 4 {
		return 0, errors.New("short sftp data")
	}
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return 0, err
	}
	rest -= 4
	n := binary.BigEndian.Uint32(lb[:])
	if uint64(n) > uint64(rest) {
		return 0, fmt.Errorf("bad sftp data length %d", n)
	}
	k := min(int(n), len(buf))
	if _, err := io.ReadFull(r, buf[:k]); err != nil {
		return 0, err
	}
	if _, err := r.Discard(rest - k); err != nil {
		return 0, err
	}
	return k, nil
}

// DirEntry is one name of a listing with its attributes. Extended
// attributes are skipped.
type DirEntry struct {
	Name  string
	Attrs sftp.FileStat
}

// minEntry is the least an entry of a NAME reply takes: two empty strings
// and the attribute flags.
const minEntry = 12

// parseNames appends the entries of a NAME body (count, then per entry
// filename, longname and attributes) to out, skipping "." and "..".
func parseNames(body []byte, out []DirEntry) ([]DirEntry, error) {
	f := fields{b: body}
	count, err := f.u32()
	if err != nil {
		return out, errors.New("short sftp name packet")
	}
	// count cannot make us loop (or allocate) beyond what the packet holds.
	if uint64(count) > uint64(len(f.b))/minEntry {
		return out, fmt.Errorf("sftp name packet claims %d entries in %d bytes", count, len(f.b))
	}
	out = grow(out, int(count))
	for range count {
		name, err := f.str()
		if err != nil {
			return out, err
		}
		if _, err := f.str(); err != nil { // longname
			return out, err
		}
		st, err := f.attrs()
		if err != nil {
			return out, err
		}
		if s := string(name); s != "." && s != ".." {
			out = append(out, DirEntry{Name: s, Attrs: st})
		}
	}
	return out, nil
}

// grow makes room for n more entries in one allocation.
func grow(out []DirEntry, n int) []DirEntry {
	if cap(out)-len(out) >= n {
		return out
	}
	g := make([]DirEntry, len(out), len(out)+n)
	copy(g, out)
	return g
}

// fields reads the fields of a reply body in order.
type fields struct{ b []byte }

func (f *fields) str() ([]byte, error) {
	n, err := f.u32()
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(f.b)) {
		return nil, errors.New("bad sftp string length")
	}
	s := f.b[:n]
	f.b = f.b[n:]
	return s, nil
}

func (f *fields) u32() (uint32, error) {
	if len(f.b) < 4 {
		return 0, errors.New("short sftp packet")
	}
	v := binary.BigEndian.Uint32(f.b)
	f.b = f.b[4:]
	return v, nil
}

func (f *fields) u64() (uint64, error) {
	hi, err := f.u32()
	if err != nil {
		return 0, err
	}
	lo, err := f.u32()
	return uint64(hi)<<32 | uint64(lo), err
}

// attrs reads one ATTRS block: flags, then the fields they announce in
// wire order, then the extended pairs (skipped).
func (f *fields) attrs() (st sftp.FileStat, err error) {
	flags, err := f.u32()
	if err != nil {
		return st, err
	}
	if flags&attrSize != 0 {
		if st.Size, err = f.u64(); err != nil {
			return st, err
		}
	}
	if flags&attrUIDGID != 0 {
		if st.UID, err = f.u32(); err != nil {
			return st, err
		}
		if st.GID, err = f.u32(); err != nil {
			return st, err
		}
	}
	if flags&attrPermissions != 0 {
		if st.Mode, err = f.u32(); err != nil {
			return st, err
		}
	}
	if flags&attrACModTime != 0 {
		if st.Atime, err = f.u32(); err != nil {
			return st, err
		}
		if st.Mtime, err = f.u32(); err != nil {
			return st, err
		}
	}
	if flags&attrExtended == 0 {
		return st, nil
	}
	n, err := f.u32()
	if err != nil {
		return st, err
	}
	// Each pair takes at least 8 bytes: a huge count fails at once.
	if uint64(n) > uint64(len(f.b))/8 {
		return st, fmt.Errorf("sftp attributes claim %d extended pairs in %d bytes", n, len(f.b))
	}
	for range 2 * n {
		if _, err := f.str(); err != nil {
			return st, err
		}
	}
	return st, nil
}
