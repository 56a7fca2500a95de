package limits

import (
	"errors"
	"net"
	"testing"
	"time"
)

// newGate is New for tests.
func newGate(t *testing.T, o Options) *Gate {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// counts returns the connections logging in, in all and from src.
func (g *Gate) counts(src Source) (all, fromSrc int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.startups, g.srcStart[src]
}

func addr(ip string) Source { return SourceOf(&net.TCPAddr{IP: net.ParseIP(ip), Port: 22}) }

// TestLoginCaps: logged-in slots are capped in all, per key (not for
// password logins, key "") and per source; Logout frees them.
func TestLoginCaps(t *testing.T) {
	g := newGate(t, Options{MaxConns: 6, MaxConnsPerKey: 2, MaxConnsPerSource: 3})
	a, b, c := addr("192.0.2.1"), addr("192.0.2.2"), addr("192.0.2.3")
	for _, step := range []struct {
		src  Source
		key  string
		want error
	}{
		{a, "k1", nil},
		{b, "k1", nil},
		{c, "k1", ErrKeyConns},
		{a, "", nil},
		{a, "", nil},
		{a, "k2", ErrSourceConns},
		{b, "k2", nil},
		{c, "k3", nil},
		{c, "k4", ErrConns},
	} {
		if err := g.Login(step.src, step.key); err != step.want {
			t.Fatalf("login from %v with %q: %v; want %v", step.src, step.key, err, step.want)
		}
	}
	g.Logout(a, "k1")
	if err := g.Login(c, "k1"); err != nil {
		t.Errorf("login after a logout: %v", err)
	}
	for _, l := range []struct {
		src Source
		key string
	}{{b, "k1"}, {a, ""}, {a, ""}, {b, "k2"}, {c, "k3"}, {c, "k1"}} {
		g.Logout(l.src, l.key)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns != 0 || len(g.srcConns) != 0 || len(g.keyConns) != 0 {
		t.Errorf("all logged out: %d connections, %d sources, %d keys; want none", g.conns, len(g.srcConns), len(g.keyConns))
	}
}

// TestStartupsFull: at MaxStartups.Full connections logging in, the next
// one is refused whatever its source; Leave frees a slot, once however
// often it is called.
func TestStartupsFull(t *testing.T) {
	g := newGate(t, Options{MaxStartups: Startups{Start: 3, Rate: 100, Full: 3}})
	now := time.Now()
	var sts []*Startup
	for i := range 3 {
		st, err := g.Admit(addr("192.0.2."+string(rune('1'+i))), nil, now)
		if err != nil {
			t.Fatalf("connection %d refused below full: %v", i, err)
		}
		sts = append(sts, st)
	}
	if _, err := g.Admit(addr("192.0.2.9"), nil, now); err != ErrStartupsFull {
		t.Fatalf("at full: %v; want %v", err, ErrStartupsFull)
	}
	sts[0].Leave()
	sts[0].Leave()
	if all, _ := g.counts(Source{}); all != 2 {
		t.Errorf("after one connection left twice: %d logging in; want 2", all)
	}
	if _, err := g.Admit(addr("192.0.2.9"), nil, now); err != nil {
		t.Errorf("after one left: %v", err)
	}
}

// TestAdmitEarlyDrop: from MaxStartups.Start on, new connections are dropped
// at random (here, at rate 100%, all of them).
func TestAdmitEarlyDrop(t *testing.T) {
	g := newGate(t, Options{MaxStartups: Startups{Start: 1, Rate: 100, Full: 3}})
	st, err := g.Admit(addr("192.0.2.1"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Source() != addr("192.0.2.1") {
		t.Errorf("admitted for %v", st.Source())
	}
	if _, err := g.Admit(addr("192.0.2.2"), nil, time.Now()); err != ErrEarlyDrop {
		t.Errorf("past start at rate 100%%: %v; want %v", err, ErrEarlyDrop)
	}
}

// TestStartupsPerSource: without silent connections to drop, a source
// gets MaxStartupsPerSource connections logging in and no more; others
// are not affected.
func TestStartupsPerSource(t *testing.T) {
	g := newGate(t, Options{MaxStartupsPerSource: 2})
	a, b := addr("2001:db8::1"), addr("2001:db8::2") // one /64
	now := time.Now()
	for _, src := range []Source{a, b} {
		if _, err := g.Admit(src, nil, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.Admit(a, nil, now); !errors.Is(err, ErrSourceLogins) {
		t.Errorf("third from one /64: %v; want %v", err, ErrSourceLogins)
	}
	if _, err := g.Admit(addr("2001:db8:0:1::1"), nil, now); err != nil {
		t.Errorf("from the next /64: %v", err)
	}
}

// TestAdmitPenalised: a blocked source is refused before anything else,
// until its penalty runs out.
func TestAdmitPenalised(t *testing.T) {
	g := newGate(t, Options{})
	src := addr("192.0.2.1")
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g.Penalise(src, Silent, t0)
	p := g.Penalise(src, Silent, t0)
	if !p.Blocked || !p.Until.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("two silent connections: %+v; want blocked until %v", p, t0.Add(20*time.Second))
	}
	if _, err := g.Admit(src, nil, t0.Add(19*time.Second)); err != ErrPenalised {
		t.Errorf("while penalised: %v; want %v", err, ErrPenalised)
	}
	if _, err := g.Admit(addr("192.0.2.2"), nil, t0.Add(time.Second)); err != nil {
		t.Errorf("another source while the first is penalised: %v", err)
	}
	if _, err := g.Admit(src, nil, t0.Add(20*time.Second)); err != nil {
		t.Errorf("once the penalty ran out: %v", err)
	}
}

// TestOptionsDefaults: zero options take the defaults; a bad
// MaxStartups is an error that names it; a negative PenaltyMax stays
// (penalties off).
func TestOptionsDefaults(t *testing.T) {
	var o Options
	if err := o.FillDefaults(); err != nil {
		t.Fatal(err)
	}
	want := Options{
		MaxConns: DefaultMaxConns, MaxConnsPerKey: DefaultMaxConnsPerKey, MaxConnsPerSource: DefaultMaxConnsPerSource,
		MaxStartups: DefaultStartups, MaxStartupsPerSource: DefaultMaxStartupsPerSource,
		MaxRequestsPerConn: DefaultMaxRequestsPerConn, PenaltyMax: DefaultPenaltyMax,
	}
	if o != want {
		t.Errorf("defaults: %+v; want %+v", o, want)
	}
	o = Options{MaxConns: 3, PenaltyMax: -1}
	if err := o.FillDefaults(); err != nil || o.MaxConns != 3 || o.PenaltyMax != -1 {
		t.Errorf("set fields: %+v, %v; want MaxConns 3 and PenaltyMax -1 kept", o, err)
	}
	if _, err := New(Options{MaxStartups: Startups{Start: 10, Rate: 30, Full: 5}}); err == nil {
		t.Error("start above full: no error")
	} else if want := "max startups 10:30:5: start must be between 1 and full (5)"; err.Error() != want {
		t.Errorf("error %q; want %q", err, want)
	}
}
