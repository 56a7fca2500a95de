//go:build !windows

package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// inodeBudget bounds the inodes of peers' files the mount holds. Every
// name the kernel knows (looked up, or described whole by READDIRPLUS)
// is an inode here, go-fuse's and ours, until the kernel forgets it,
// which it does only under memory pressure: without a bound, `ls -l` of
// a million entries holds a million. Past max, the oldest are
// invalidated in the kernel (FUSE_NOTIFY_INVAL_ENTRY): it drops the
// name, forgets the inode once nothing uses it (FORGET, then
// node.OnForget), and looks the name up again when asked, answered from
// the cached listing. An inode in use (an open file, a working
// directory) stays; it is asked again at the next pass.
//
// READDIRPLUS describes every entry of a listing whole, whatever its size,
// and the oldest are pushed out as the new ones come: `ls -l` and
// rsync, which look at the entries of each getdents before the next,
// find every entry described and ask nothing more. Files the
// kernel looked up go first, then files READDIRPLUS described, then
// directories: a program that lists everything before it looks at
// anything finds the oldest entries pushed out and looks each up, and
// those lookups push out each other, not the entries it has yet to look
// at. A directory goes last: dropping it drops every name below it (the
// directory being listed among them).
type inodeBudget struct {
	max int
	// slack is how far past max READDIRPLUS may still describe entries
	// while run pushes the oldest out, so the mount's inodes never run
	// far ahead of the kernel's forgetting.
	slack int
	kick  chan struct{}
	// free is max-(live-pending), kept beside them for room, which
	// READDIRPLUS asks for every entry of a listing: a million of them
	// must not queue on mu.
	free atomic.Int64

	mu      sync.Mutex
	live    int // counted nodes the kernel has not forgotten
	pending int // of them, invalidated and not yet forgotten
	queues  [classes]nodeQueue
}

// Eviction classes, in the order they are pushed out.
const (
	lookedUpFile = iota
	describedFile
	directory
	classes
)

// nodeQueue holds counted nodes, oldest first (forgotten ones skipped).
type nodeQueue struct {
	nodes []*node
	head  int
}

func (q *nodeQueue) push(n *node) { q.nodes = append(q.nodes, n) }

func (q *nodeQueue) len() int { return len(q.nodes) - q.head }

func (q *nodeQueue) pop() *node {
	n := q.nodes[q.head]
	q.nodes[q.head] = nil
	q.head++
	if q.head > 1024 && q.head > len(q.nodes)/2 {
		// Drop the consumed front, so the queue holds about the live
		// nodes.
		q.nodes = append(q.nodes[:0], q.nodes[q.head:]...)
		q.head = 0
	}
	return n
}

// Node states in the budget (node.budget, under inodeBudget.mu).
const (
	notCounted uint8 = iota
	counted
	invalidated
)

// retryPinned is how often nodes still in use after an invalidation are
// asked again while the budget is exceeded.
const retryPinned = 5 * time.Second

func newInodeBudget(max int) *inodeBudget {
	b := &inodeBudget{max: max, slack: max / 4, kick: make(chan struct{}, 1)}
	b.free.Store(int64(max))
	return b
}

// room reports whether READDIRPLUS may describe an entry whole: past the
// budget by less than the slack.
func (b *inodeBudget) room() bool { return b.free.Load() > -int64(b.slack) }

// updateLocked sets free after live or pending changed.
func (b *inodeBudget) updateLocked() { b.free.Store(int64(b.max - (b.live - b.pending))) }

// add counts a node just made for the kernel, of one of the classes.
func (b *inodeBudget) add(n *node, class int) {
	b.mu.Lock()
	n.budget, n.class = counted, uint8(class)
	b.live++
	b.updateLocked()
	b.queues[class].push(n)
	over := b.live-b.pending > b.max
	b.mu.Unlock()
	if over {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// forgot uncounts a node the kernel forgot (or that go-fuse never used:
// a lookup racing another of the same name).
func (b *inodeBudget) forgot(n *node) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch n.budget {
	case invalidated:
		b.pending--
		fallthrough
	case counted:
		b.live--
	}
	n.budget = notCounted
	b.updateLocked()
}

// next returns the oldest counted node to invalidate while the budget is
// exceeded, marking it invalidated and putting it back at the end of its
// queue (it is looked at again if the kernel keeps it), or nil.
func (b *inodeBudget) next() *node {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.queues {
		q := &b.queues[i]
		for tries := q.len(); tries > 0 && b.live-b.pending > b.max; tries-- {
			n := q.pop()
			switch n.budget {
			case notCounted:
				continue
			case invalidated:
				q.push(n) // waiting for its FORGET
				continue
			}
			n.budget = invalidated
			b.pending++
			b.updateLocked()
			q.push(n)
			return n
		}
	}
	return nil
}

// run invalidates nodes past the budget until ctx ends. Invalidations
// are written to the kernel here, never from a request's handler.
func (b *inodeBudget) run(ctx context.Context) {
	t := time.NewTicker(retryPinned)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-t.C:
			b.retryPending()
		}
		for n := b.next(); n != nil; n = b.next() {
			if n.Forgotten() {
				// Never registered (a lookup of the same name won
				// the race: go-fuse dropped this one and calls no
				// OnForget for it), or forgotten already.
				b.forgot(n)
				continue
			}
			name, parent := n.Parent()
			if parent == nil {
				b.forgot(n)
				continue
			}
			_ = parent.NotifyEntry(name) // ENOENT: the kernel dropped it already
		}
	}
}

// retryPending counts the nodes still held after their invalidation as
// counted again, so the next pass asks the kernel once more.
func (b *inodeBudget) retryPending() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == 0 {
		return
	}
	for i := range b.queues {
		q := &b.queues[i]
		for _, n := range q.nodes[q.head:] {
			if n != nil && n.budget == invalidated {
				n.budget = counted
				b.pending--
			}
		}
	}
	b.updateLocked()
	if b.live > b.max {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// count is the nodes counted and not forgotten.
func (b *inodeBudget) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}
