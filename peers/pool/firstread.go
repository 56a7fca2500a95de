package pool

// firstRead is what a Reader asks for right after the OPEN: the whole of
// a small file, or the start of a big one. It is the kernel's first read
// size (128 KiB), so a sequential reader finds it waiting, and a random
// reader of a big file wastes at most this much once per open.
const firstRead = 128 << 10

// readFirst queues the first read-ahead chunk at from without waiting for
// the kernel's first read: the request leaves as soon as the handle is
// known, a round trip saved per file. A read at from (or inside the chunk)
// counts as sequential and uses it; any other read drops it.
func (r *Reader) readFirst(from int64) {
	size := r.size.Load()
	if size <= from || from < 0 {
		return // empty, or unknown size: nothing sure to be read
	}
	want := min(size-from, firstRead, int64(r.chunk))
	r.mu.Lock()
	defer r.mu.Unlock()
	// Counted in the read-ahead budget (dropLocked gives it back), but
	// not refused by it: each open makes only this one.
	r.pool.ahead.Add(ChunkSize)
	ch := &chunk{off: from, want: int(want), buf: chunkPool.Get().(*[]byte), done: make(chan struct{})}
	r.queue = append(r.queue, ch)
	r.next = from + want
	r.seqEnd = from
	go r.fetch(ch)
}
