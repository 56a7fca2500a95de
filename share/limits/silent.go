package limits

import (
	"net"
	"slices"
	"sync/atomic"
)

// A slowloris from an address a friend also uses (one carrier-grade NAT,
// one office) must not keep the friend out: when a source is at its
// limit of connections logging in at once, a new connection takes the
// slot of the source's oldest connection that has not sent its SSH
// version line yet (a real client sends it at once), which is closed. Only
// when none of them is silent is the new one refused. A dropped connection
// carries no penalty: it held a slot and got nothing for it.

// Startup is a connection admitted by Gate.Admit that has not logged in
// yet: it holds a pre-login slot until Leave.
type Startup struct {
	g   *Gate
	src Source
	// conn is the TCP connection, or nil for one that never gives way
	// to a newer one (a relayed stream).
	conn   net.Conn
	member bool        // admitted by AdmitMember
	hello  atomic.Bool // its version line was read
	// Under the gate's lock: dropped is set when the connection gave its
	// slot to a newer one (the slot is no longer its to free), left once
	// Leave ran.
	dropped, left bool
}

// Source is the source the connection was admitted for.
func (st *Startup) Source() Source { return st.src }

// Hello notes that the connection's SSH version line has been read: it is
// no longer silent.
func (st *Startup) Hello() { st.hello.Store(true) }

// silent reports whether the connection has sent no version line yet,
// neither read nor waiting in the kernel's receive queue.
func (st *Startup) silent() bool {
	return st.conn != nil && !st.hello.Load() && !versionQueued(st.conn)
}

// oldestSilentLocked removes and returns the oldest silent connection
// from src, or nil. g.mu is held.
func (g *Gate) oldestSilentLocked(src Source) *Startup {
	list := g.srcList[src]
	i := slices.IndexFunc(list, (*Startup).silent)
	if i < 0 {
		return nil
	}
	st := list[i]
	g.srcList[src] = slices.Delete(list, i, i+1)
	st.dropped = true
	return st
}

// listLocked adds st to its source's list, newest last. g.mu is held.
func (g *Gate) listLocked(st *Startup) {
	if st.conn != nil {
		g.srcList[st.src] = append(g.srcList[st.src], st)
	}
}

// Leave frees the connection's pre-login slot (it logged in, or ended),
// unless it gave the slot to a newer connection; it reports whether it
// did. Calls after the first free nothing and report the same.
func (st *Startup) Leave() (dropped bool) {
	g := st.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.left {
		return st.dropped
	}
	st.left = true
	list := g.srcList[st.src]
	if i := slices.Index(list, st); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(g.srcList, st.src)
		} else {
			g.srcList[st.src] = list
		}
	}
	if !st.dropped {
		g.leaveStartupLocked(st)
	}
	return st.dropped
}
