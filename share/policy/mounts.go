package policy

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// mountsRecheck is how often Options.ExcludeMounts is asked again, so a
// dsftp mount made inside the share after it started is hidden within
// about this long.
const mountsRecheck = time.Second

// excludedMounts holds the mountpoints inside the share that are never
// served (dsftp's own FUSE mounts: serving them would loop peers through
// each other's shares), as root-relative paths.
type excludedMounts struct {
	list     func() []string
	rootReal string

	next atomic.Int64 // unix nanoseconds of the next call to list
	set  atomic.Pointer[map[string]bool]
	mu   sync.Mutex
}

func newExcludedMounts(list func() []string, rootReal string) *excludedMounts {
	if list == nil {
		return nil
	}
	m := &excludedMounts{list: list, rootReal: rootReal}
	m.refresh(time.Now().UnixNano())
	return m
}

// has reports whether rel is an excluded mountpoint.
func (m *excludedMounts) has(rel string) bool {
	if m == nil {
		return false
	}
	now := time.Now().UnixNano()
	if now >= m.next.Load() {
		m.refresh(now)
	}
	return (*m.set.Load())[rel]
}

func (m *excludedMounts) refresh(now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set.Load() != nil && now < m.next.Load() {
		return
	}
	set := map[string]bool{}
	for _, p := range m.list() {
		if rel, ok := absInside(m.rootReal, p); ok && rel != "." {
			set[filepath.ToSlash(rel)] = true
		}
	}
	m.set.Store(&set)
	m.next.Store(now + int64(mountsRecheck))
}
