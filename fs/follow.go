//go:build !windows

package fs

import "time"

// holder tells how long an open file has been held. A file held open for
// followAfter is likely followed (tail -f polls fstat on it once a
// second); one read and closed at once (cp, grep -r) is not, and gets
// the cache as any other file, at no extra request.
type holder struct {
	opened time.Time
	timer  *time.Timer // drops the kernel's attributes at followAfter
}

// holdOpen starts the clock of a handle of n. At followAfter, if the
// handle is still open, the kernel's attributes of n (from the lookup
// before the open, kept for AttrTTL) are dropped, so that its next fstat
// reaches Getattr, which then answers from fresh attributes.
func (n *node) holdOpen() *holder {
	h := &holder{opened: time.Now()}
	if n.fsys.cache != nil {
		h.timer = time.AfterFunc(followAfter, func() { n.NotifyContent(-1, 0) })
	}
	return h
}

// followed reports whether the handle has been held for followAfter.
func (h *holder) followed() bool { return time.Since(h.opened) >= followAfter }

// release stops the clock (at the handle's Release).
func (h *holder) release() {
	if h.timer != nil {
		h.timer.Stop()
	}
}

// heldHandle is a file handle with a holder (handle, memHandle).
type heldHandle interface{ held() *holder }

func (h *handle) held() *holder    { return h.hold }
func (h *memHandle) held() *holder { return h.hold }
