package punch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// A source at its connection limit: a newcomer takes the place of the
// oldest connection without a stream, and is refused while every
// connection from the source carries one.
func TestIdleGivesWay(t *testing.T) {
	a := newEndpoint(t, "A", Config{MaxConnsPerSource: 2})
	ctx := testCtx(t, 20*time.Second)
	dial := func() (*Path, error) {
		b := newEndpoint(t, "B", Config{})
		return b.Dial(ctx, a.Addr(), "A")
	}
	// use opens a stream on p and waits until a serves it.
	use := func(p *Path) {
		s, err := p.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		served, err := a.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { served.Close() })
	}
	busy, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	use(busy)
	idle, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(idleGrace + 100*time.Millisecond)
	third, err := dial()
	if err != nil {
		t.Fatalf("a newcomer beside an idle connection: %v", err)
	}
	defer third.Close()
	use(third)
	select {
	case <-idle.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection was not closed for the newcomer")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(idle.conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != errCodeIdle {
		t.Errorf("the idle connection ended with %v; want application error %#x", err, errCodeIdle)
	}
	select {
	case <-busy.Done():
		t.Fatal("the connection carrying a stream was closed")
	default:
	}
	if st := a.Stats(); st.Evicted != 1 || st.Conns != 2 {
		t.Errorf("stats %+v; want 1 evicted, 2 connections", st)
	}
	// Both now carry a stream: no place.
	if p, err := dial(); err == nil {
		p.Close()
		t.Fatal("a fourth connection got in; want it refused")
	}
}
