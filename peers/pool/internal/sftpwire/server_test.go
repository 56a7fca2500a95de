package sftpwire

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/pkg/sftp"
)

// pkgServer serves SFTP with pkg/sftp's server in this process, over a
// loopback TCP connection, and returns the client's end.
func pkgServer(tb testing.TB) net.Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := sftp.NewServer(c)
		if err != nil {
			return
		}
		_ = s.Serve()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn
}

// startChan starts a Chan on conn and closes it at the end of the test.
func startChan(tb testing.TB, conn net.Conn) *Chan {
	tb.Helper()
	c, err := Start(conn, conn, conn.Close)
	if err != nil {
		tb.Fatalf("start: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// scripted is a server that answers INIT with version (raw bytes) and
// every request with what answer returns for it (raw bytes, nil for no
// answer): a server that sends what a test wants, garbage included. With
// hangUp it closes the connection after its first answer.
func scripted(tb testing.TB, version []byte, hangUp bool, answer func(typ byte, id uint32, body []byte) []byte) net.Conn {
	tb.Helper()
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer server.Close()
		r := bufio.NewReader(server)
		var init [9]byte
		if _, err := io.ReadFull(r, init[:]); err != nil {
			return
		}
		if _, err := server.Write(version); err != nil {
			return
		}
		for {
			var h [9]byte
			if _, err := io.ReadFull(r, h[:]); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(h[:4])-5)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			if out := answer(h[4], binary.BigEndian.Uint32(h[5:]), body); out != nil {
				if _, err := server.Write(out); err != nil || hangUp {
					return
				}
			}
		}
	})
	tb.Cleanup(func() {
		client.Close()
		wg.Wait()
	})
	return client
}

// Packet builders for scripted servers and fuzz seeds.

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func str(s string) []byte { return sftpString(s) }

// pkt is a reply: length, type, id, body.
func pkt(typ byte, id uint32, body ...[]byte) []byte {
	n := 5
	for _, b := range body {
		n += len(b)
	}
	out := appendHeader(nil, header{length: uint32(n), typ: typ, id: id})
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

// versionPkt is a VERSION reply with extension pairs.
func versionPkt(v uint32, exts ...extension) []byte {
	body := u32(v)
	for _, e := range exts {
		body = appendString(appendString(body, e.name), e.data)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(1+len(body))), append([]byte{fxpVersion}, body...)...)
}

func statusPkt(id, code uint32, msg string) []byte {
	return pkt(fxpStatus, id, u32(code), str(msg), str(""))
}

// marshalStatus is the STATUS body parseStatus reads s from.
func marshalStatus(s status) []byte {
	return append(append(u32(s.code), str(s.msg)...), str("")...)
}

// marshalNames is a NAME body holding es, with every attribute present.
func marshalNames(es []DirEntry) []byte {
	b := u32(uint32(len(es)))
	for _, e := range es {
		b = appendString(b, e.Name)
		b = appendString(b, "")
		b = binary.BigEndian.AppendUint32(b, attrSize|attrUIDGID|attrPermissions|attrACModTime)
		b = binary.BigEndian.AppendUint64(b, e.Attrs.Size)
		for _, v := range []uint32{e.Attrs.UID, e.Attrs.GID, e.Attrs.Mode, e.Attrs.Atime, e.Attrs.Mtime} {
			b = binary.BigEndian.AppendUint32(b, v)
		}
	}
	return b
}
