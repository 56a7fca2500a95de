package share

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

// startup is a connection that has not logged in yet.
type startup struct {
	src source
	// conn is the TCP connection, or nil for one that never gives way
	// to a newer one (a relayed stream).
	conn  net.Conn
	hello atomic.Bool // its version line was read
	// dropped is set, under the gate's lock, when the connection gave
	// its slot to a newer one; the slot is no longer its to free.
	dropped bool
}

// silent reports whether the connection has sent no version line yet,
// neither read nor waiting in the kernel's receive queue.
func (st *startup) silent() bool {
	return st.conn != nil && !st.hello.Load() && !versionQueued(st.conn)
}

// oldestSilentLocked removes and returns the oldest silent connection
// from src, or nil. g.mu is held.
func (g *gate) oldestSilentLocked(src source) *startup {
	list := g.srcList[src]
	i := slices.IndexFunc(list, (*startup).silent)
	if i < 0 {
		return nil
	}
	st := list[i]
	g.srcList[src] = slices.Delete(list, i, i+1)
	st.dropped = true
	return st
}

// listLocked adds st to its source's list, newest last. g.mu is held.
func (g *gate) listLocked(st *startup) {
	if st.conn != nil {
		g.srcList[st.src] = append(g.srcList[st.src], st)
	}
}

// leave frees st's pre-login slot, unless it gave it to a newer
// connection; it reports whether it did.
func (g *gate) leave(st *startup) (dropped bool) {
	g.mu.Lock()
	list := g.srcList[st.src]
	if i := slices.Index(list, st); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(g.srcList, st.src)
		} else {
			g.srcList[st.src] = list
		}
	}
	dropped = st.dropped
	g.mu.Unlock()
	if !dropped {
		g.leaveStartup(st.src)
	}
	return dropped
}
