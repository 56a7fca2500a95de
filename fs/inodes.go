//go:build !windows

package fs

import (
	"context"
	"sync"
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
type inodeBudget struct {
	max  int
	kick chan struct{}

	mu      sync.Mutex
	live    int     // counted nodes the kernel has not forgotten
	pending int     // of them, invalidated and not yet forgotten
	queue   []*node // counted nodes, oldest first (forgotten ones skipped)
	head    int
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
	return &inodeBudget{max: max, kick: make(chan struct{}, 1)}
}

// room reports whether another inode fits without pushing one out: then
// READDIRPLUS may describe an entry whole.
func (b *inodeBudget) room() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live-b.pending < b.max
}

// add counts a node just made for the kernel.
func (b *inodeBudget) add(n *node) {
	b.mu.Lock()
	n.budget = counted
	b.live++
	b.queue = append(b.queue, n)
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
}

// next returns the oldest counted node to invalidate while the budget is
// exceeded, marking it invalidated and putting it back at the end (it
// is looked at again if the kernel keeps it), or nil.
func (b *inodeBudget) next() *node {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.compactLocked()
	for tries := len(b.queue) - b.head; tries > 0 && b.live-b.pending > b.max; tries-- {
		n := b.queue[b.head]
		b.queue[b.head] = nil
		b.head++
		switch n.budget {
		case notCounted:
			continue
		case invalidated:
			b.queue = append(b.queue, n) // waiting for its FORGET
			continue
		}
		n.budget = invalidated
		b.pending++
		b.queue = append(b.queue, n)
		return n
	}
	return nil
}

// compactLocked drops the queue's consumed front once it is half of it,
// so the queue holds about the live nodes.
func (b *inodeBudget) compactLocked() {
	if b.head > 1024 && b.head > len(b.queue)/2 {
		b.queue = append(b.queue[:0], b.queue[b.head:]...)
		b.head = 0
	}
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
	for _, n := range b.queue[b.head:] {
		if n != nil && n.budget == invalidated {
			n.budget = counted
			b.pending--
		}
	}
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
