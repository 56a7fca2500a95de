//go:build linux

package lan_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// A querying listener hears every live member within a second although
// they announce only every minute: they answer its query at once. It
// still signs nothing, and the members never learn of it.
func TestQueryAnswered(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	a := startNode(t, "alice", port, nil)
	b := startNode(t, "bob", port, nil)
	waitNames(t, a.reg, "bob")
	waitNames(t, b.reg, "alice")
	// Their announcements on start (and in answer to each other) are
	// over: the next are a minute away.
	time.Sleep(time.Second)
	silent := startNode(t, "mallory", port, func(o *lan.Options) { o.ListenOnly = true })
	l := startNode(t, "eve", port, func(o *lan.Options) { o.ListenOnly, o.Query = true, true })
	testenv.WaitFor(t, 5*time.Second, "the querying listener to hear alice and bob", func() bool {
		return slices.Equal(names(l.reg), []string{"alice", "bob"})
	})
	// It hears the answers to eve's query too: they are broadcast. It
	// handles them on its own goroutine, so maybe a little after eve.
	testenv.WaitFor(t, 5*time.Second, "the listener next to the querier to hear alice and bob", func() bool {
		return slices.Equal(names(silent.reg), []string{"alice", "bob"})
	})
	for _, n := range []*node{a, b} {
		if s := n.d.Stats(); s.Queries == 0 || s.Answered == 0 {
			t.Errorf("%s did not answer the query: %+v", n.codec.name, s)
		}
	}
	// Run has returned, so its counts are final; it signed nothing, so
	// what it sent (queries) cannot make it known.
	l.stop()
	if s := l.d.Stats(); s.Sent == 0 || s.Sent > 2*4 {
		t.Errorf("the querier sent %d datagrams; want its query and one retry per destination", s.Sent)
	}
	l.codec.mu.Lock()
	seq := l.codec.seq
	l.codec.mu.Unlock()
	if seq != 0 {
		t.Errorf("the querier signed %d adverts; it must sign none", seq)
	}
	if got := names(a.reg); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("alice lists %v: the querier must stay unknown", got)
	}
}

// A flood of queries, from one address and from many, costs a member a
// bounded number of announcements: one a second per source after a
// burst of two, five a second in total after a burst of ten.
func TestQueryFlood(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	// One member only: a unicast query reaches one of the sockets that
	// share the port.
	a := startNode(t, "alice", port, nil)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	flood := func(from string, n int) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range n {
			if _, err := c.WriteToUDP([]byte(lan.Query), to); err != nil {
				t.Fatal(err)
			}
		}
	}
	heard := func(want uint64) lan.Stats {
		var s lan.Stats
		testenv.WaitFor(t, 10*time.Second, "alice to read the queries", func() bool {
			s = a.d.Stats()
			return s.Queries >= want
		})
		return s
	}
	start := time.Now()
	flood("127.0.0.20", 500)
	s := heard(500)
	if s.Answered < 1 || float64(s.Answered) > 2+time.Since(start).Seconds()+1 {
		t.Errorf("one source sent 500 queries in %v: %d answered; want its burst of 2 and one a second", time.Since(start), s.Answered)
	}
	before := s.Answered
	start = time.Now()
	for i := range 50 {
		flood("127.0.1."+string(rune('0'+i/10))+string(rune('0'+i%10)), 20)
	}
	s = heard(500 + 50*20)
	if n := s.Answered - before; n < 1 || float64(n) > 10+5*time.Since(start).Seconds()+1 {
		t.Errorf("50 sources sent 20 queries each in %v: %d answered; want the total burst of 10 and five a second", time.Since(start), n)
	}
}
