package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dsftp/dsftp/peers"
	"github.com/pkg/sftp"
)

// More SFTP v3 packet types and attribute flags, for listings.
const (
	fxpOpendir = 11
	fxpReaddir = 12
	fxpName    = 104

	attrSize        = 0x00000001
	attrUIDGID      = 0x00000002
	attrPermissions = 0x00000004
	attrACModTime   = 0x00000008
	attrExtended    = 0x80000000
)

// DirEntry is one name of a listing with its attributes. Extended
// attributes are skipped.
type DirEntry struct {
	Name  string
	Attrs sftp.FileStat
}

// ReadDirLimit lists the directory rel in the server's order, but stops
// reading after limit entries (limit <= 0: no limit) and then reports
// truncated. pkg/sftp's ReadDir keeps reading until the server says EOF,
// so a hostile server could make it hold any number of entries; this
// reads the listing one NAME packet (at most 1 MiB) at a time on the
// connection's own SFTP session and closes the handle at the limit.
func (p *Pool) ReadDirLimit(ctx context.Context, peer peers.Peer, rel string, limit int) ([]DirEntry, bool, error) {
	return p.ReadDirBudget(ctx, peer, rel, limit, nil)
}

// ErrListingBudget is ReadDirBudget's error when take refused entries.
var ErrListingBudget = errors.New("listing budget spent")

// ReadDirBudget is ReadDirLimit that also asks take for every reply's
// entries as they arrive (take == nil: no budget) and stops with
// ErrListingBudget when take says no: a background fetch pays for what it
// reads, not for a worst case reserved up front.
func (p *Pool) ReadDirBudget(ctx context.Context, peer peers.Peer, rel string, limit int, take func(n int) bool) ([]DirEntry, bool, error) {
	type result struct {
		entries   []DirEntry
		truncated bool
		refused   bool
	}
	r, err := do(ctx, p, peer, "readdir", rel, func(c *conn) (result, error) {
		d, err := c.dataChan()
		if err != nil {
			return result{}, err
		}
		es, trunc, err := d.readDir(ctx, RemotePath(peer, rel), limit, take)
		if errors.Is(err, ErrListingBudget) {
			// Not the connection's fault: it must not be closed for it.
			return result{refused: true}, nil
		}
		return result{es, trunc, false}, err
	})
	if err == nil && r.refused {
		return nil, false, ErrListingBudget
	}
	return r.entries, r.truncated, err
}

// readDir runs OPENDIR, READDIR until EOF, the limit, ctx's end or take's
// refusal, and CLOSE.
func (d *dataChan) readDir(ctx context.Context, path string, limit int, take func(n int) bool) ([]DirEntry, bool, error) {
	req := &dataReq{}
	if err := d.send(fxpOpendir, req, sftpString(path)); err != nil {
		return nil, false, err
	}
	<-req.done
	if req.err != nil {
		return nil, false, req.err
	}
	if req.handle == "" {
		if err := req.result(); err != nil {
			return nil, false, err
		}
		return nil, false, errors.New("sftp opendir: no handle")
	}
	h := req.handle
	// CLOSE is sent, not waited for: the listing is complete either way.
	defer d.closeNoWait(h)
	hs := sftpString(h)
	// READDIRs are pipelined, readdirAhead in flight, so a listing of a
	// few hundred entries (OpenSSH sends 100 a reply) costs one round
	// trip after the OPENDIR instead of one per reply. Each has its own
	// slice (the read loop fills it, and nobody waits for the replies
	// past the end); at most readdirAhead-1 replies are read past the
	// limit.
	var out []DirEntry
	var queue []*dataReq
	send := func() error {
		r := &dataReq{names: new([]DirEntry)}
		queue = append(queue, r)
		return d.send(fxpReaddir, r, hs)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if limit > 0 && len(out) >= limit {
			return out[:limit], true, nil
		}
		for len(queue) < readdirAhead {
			if err := send(); err != nil {
				return nil, false, err
			}
		}
		req := queue[0]
		<-req.done
		queue = queue[1:]
		if req.err != nil {
			return nil, false, req.err
		}
		if !req.named {
			err := req.result()
			if errors.Is(err, io.EOF) {
				return out, false, nil
			}
			if err == nil {
				err = errors.New("sftp readdir: OK status instead of names")
			}
			return nil, false, err
		}
		if take != nil && !take(len(*req.names)) {
			return nil, false, ErrListingBudget
		}
		out = append(out, *req.names...)
	}
}

// readdirAhead is how many READDIRs a listing keeps in flight.
const readdirAhead = 4

// parseNames appends the entries of a NAME reply body (count, then per
// entry filename, longname and attributes) to out, skipping "." and "..".
func parseNames(body []byte, out *[]DirEntry) error {
	if len(body) < 4 {
		return errors.New("short sftp name packet")
	}
	count := binary.BigEndian.Uint32(body)
	r := &nameReader{b: body[4:]}
	// Every entry takes at least 16 bytes, so count cannot make us loop
	// (or allocate) beyond what the packet holds.
	if uint64(count) > uint64(len(r.b))/16 {
		return fmt.Errorf("sftp name packet claims %d entries in %d bytes", count, len(r.b))
	}
	for range count {
		name, err := r.str()
		if err != nil {
			return err
		}
		if _, err := r.str(); err != nil { // longname
			return err
		}
		st, err := r.attrs()
		if err != nil {
			return err
		}
		if s := string(name); s != "." && s != ".." {
			*out = append(*out, DirEntry{Name: s, Attrs: st})
		}
	}
	return nil
}

// nameReader reads the fields of a NAME reply body in order.
type nameReader struct{ b []byte }

func (r *nameReader) str() ([]byte, error) {
	if len(r.b) < 4 {
		return nil, errors.New("short sftp name entry")
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(n) > uint64(len(r.b)-4) {
		return nil, errors.New("bad sftp string length")
	}
	s := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return s, nil
}

func (r *nameReader) u32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errors.New("short sftp attributes")
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

// attrs reads one ATTRS block: flags, then the fields they announce.
func (r *nameReader) attrs() (st sftp.FileStat, err error) {
	flags, err := r.u32()
	if err != nil {
		return st, err
	}
	// fields lists, in wire order, where each present uint32 goes; a
	// 64-bit size is two of them.
	var hi, lo, extended uint32
	var fields []*uint32
	if flags&attrSize != 0 {
		fields = append(fields, &hi, &lo)
	}
	if flags&attrUIDGID != 0 {
		fields = append(fields, &st.UID, &st.GID)
	}
	if flags&attrPermissions != 0 {
		fields = append(fields, &st.Mode)
	}
	if flags&attrACModTime != 0 {
		fields = append(fields, &st.Atime, &st.Mtime)
	}
	if flags&attrExtended != 0 {
		fields = append(fields, &extended)
	}
	for _, f := range fields {
		if *f, err = r.u32(); err != nil {
			return st, err
		}
	}
	st.Size = uint64(hi)<<32 | uint64(lo)
	for range extended {
		if _, err := r.str(); err != nil {
			return st, err
		}
		if _, err := r.str(); err != nil {
			return st, err
		}
	}
	return st, nil
}
