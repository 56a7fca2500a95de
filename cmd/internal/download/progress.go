package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress receives the events of a download. Add may be called from
// another goroutine than the other methods.
type Progress interface {
	// Begin announces files files of bytes in total.
	Begin(files int, bytes int64)
	// FileStart: a file of size bytes starts, from byte from (resumed).
	FileStart(name string, size, from int64)
	// Add: n more bytes of the current file arrived.
	Add(n int64)
	// FileDone: the current file finished, or failed with err.
	FileDone(r FileResult, err error)
	// Note is a one-line remark (a skipped entry, a restart).
	Note(msg string)
	// End: the download is over.
	End()
}

type nopProgress struct{}

func (nopProgress) Begin(int, int64)               {}
func (nopProgress) FileStart(string, int64, int64) {}
func (nopProgress) Add(int64)                      {}
func (nopProgress) FileDone(FileResult, error)     {}
func (nopProgress) Note(string)                    {}
func (nopProgress) End()                           {}

// meter tracks bytes and a smoothed rate.
type meter struct {
	done, size int64
	from       int64 // done at start (resumed bytes)
	start      time.Time
	rate       float64 // bytes/s, exponentially smoothed
	lastT      time.Time
	lastN      int64
}

func (m *meter) reset(size, from int64, now time.Time) {
	*m = meter{done: from, size: size, from: from, start: now, lastT: now, lastN: from}
}

func (m *meter) sample(now time.Time) {
	dt := now.Sub(m.lastT).Seconds()
	if dt < 0.1 {
		return
	}
	r := float64(m.done-m.lastN) / dt
	if m.rate == 0 {
		m.rate = r
	} else {
		m.rate = 0.7*m.rate + 0.3*r
	}
	m.lastT, m.lastN = now, m.done
}

// current returns the smoothed rate, or before the first sample the
// average since the start.
func (m *meter) current(now time.Time) float64 {
	if m.rate > 0 {
		return m.rate
	}
	if dt := now.Sub(m.start).Seconds(); dt > 0 {
		return float64(m.done-m.from) / dt
	}
	return 0
}

func (m *meter) eta() string {
	rate := m.current(time.Now())
	if rate <= 0 || m.done >= m.size {
		return "--:--"
	}
	s := int(float64(m.size-m.done) / rate)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// Bar draws progress bars on a terminal: one line for the current file and,
// for more than one file, a second line with the total. It redraws at most
// every Interval from its own ticker.
type Bar struct {
	W     io.Writer
	Width func() int // terminal columns; nil means 80

	mu       sync.Mutex
	files    int
	nfile    int
	name     string
	file     meter
	total    meter
	lines    int // lines currently drawn
	stopTick chan struct{}
	wg       sync.WaitGroup
}

// NewBar returns a Bar writing to w.
func NewBar(w io.Writer, width func() int) *Bar { return &Bar{W: w, Width: width} }

func (b *Bar) Begin(files int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files, b.nfile = files, 0
	b.total.reset(bytes, 0, time.Now())
	b.stopTick = make(chan struct{})
	b.wg.Add(1)
	go b.tick(b.stopTick)
}

func (b *Bar) tick(stop chan struct{}) {
	defer b.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			b.file.sample(now)
			b.total.sample(now)
			b.drawLocked()
			b.mu.Unlock()
		}
	}
}

func (b *Bar) FileStart(name string, size, from int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nfile++
	b.name = name
	b.file.reset(size, from, time.Now())
	b.total.done += from
	b.total.from += from
	b.total.lastN += from
	b.drawLocked()
}

func (b *Bar) Add(n int64) {
	b.mu.Lock()
	b.file.done += n
	b.total.done += n
	b.mu.Unlock()
}

func (b *Bar) FileDone(r FileResult, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clearLocked()
	fmt.Fprintln(b.W, doneLine(r, err))
	b.drawLocked()
}

func (b *Bar) Note(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clearLocked()
	fmt.Fprintln(b.W, msg)
	b.drawLocked()
}

func (b *Bar) End() {
	b.mu.Lock()
	stop := b.stopTick
	b.stopTick = nil
	b.mu.Unlock()
	if stop != nil {
		close(stop)
		b.wg.Wait()
	}
	b.mu.Lock()
	b.clearLocked()
	b.mu.Unlock()
}

func (b *Bar) clearLocked() {
	for i := 0; i < b.lines; i++ {
		if i > 0 {
			io.WriteString(b.W, "\x1b[1A") // cursor up
		}
		io.WriteString(b.W, "\r\x1b[2K") // erase line
	}
	b.lines = 0
}

func (b *Bar) drawLocked() {
	if b.name == "" || b.stopTick == nil {
		return
	}
	width := 80
	if b.Width != nil {
		if w := b.Width(); w > 20 {
			width = w
		}
	}
	b.clearLocked()
	io.WriteString(b.W, barLine(b.name, &b.file, width))
	b.lines = 1
	if b.files > 1 {
		io.WriteString(b.W, "\n"+barLine(fmt.Sprintf("total %d/%d", b.nfile, b.files), &b.total, width))
		b.lines = 2
	}
}

// barLine renders "name  [=====>    ]  42%  12.0 MiB/200.0 MiB  35.2 MiB/s  ETA 00:05"
// in at most width-1 columns.
func barLine(name string, m *meter, width int) string {
	pct := 100.0
	if m.size > 0 {
		pct = float64(m.done) * 100 / float64(m.size)
	}
	stats := fmt.Sprintf(" %3.0f%% %s/%s %s/s ETA %s", pct, Size(m.done), Size(m.size), Size(int64(m.current(time.Now()))), m.eta())
	nameW := min(len([]rune(name)), 28)
	barW := width - 1 - len(stats) - nameW - 3
	if barW < 10 {
		barW = 10
		nameW = max(0, width-1-len(stats)-barW-3)
	}
	r := []rune(name)
	if len(r) > nameW {
		if nameW > 1 {
			r = append([]rune{'…'}, r[len(r)-nameW+1:]...)
		} else {
			r = r[:nameW]
		}
	}
	fill := int(float64(barW) * pct / 100)
	fill = max(0, min(fill, barW))
	bar := strings.Repeat("=", fill)
	if fill < barW {
		bar += ">" + strings.Repeat(" ", barW-fill-1)
	}
	return fmt.Sprintf("%-*s [%s]%s", nameW, string(r), bar, stats)
}

// Lines reports progress as plain lines, for output that is not a
// terminal: a line when a file starts, one every Every while it runs (10
// seconds when zero), and one when it ends.
type Lines struct {
	W     io.Writer
	Every time.Duration

	mu   sync.Mutex
	name string
	file meter
	next time.Time
}

func (l *Lines) Begin(files int, bytes int64) {
	if files > 1 {
		l.mu.Lock()
		fmt.Fprintf(l.W, "%d files, %s\n", files, Size(bytes))
		l.mu.Unlock()
	}
}

func (l *Lines) FileStart(name string, size, from int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.name = name
	now := time.Now()
	l.file.reset(size, from, now)
	every := l.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	l.next = now.Add(every)
	if from > 0 && from < size {
		fmt.Fprintf(l.W, "%s: resuming at %s of %s\n", name, Size(from), Size(size))
	} else if from == 0 {
		fmt.Fprintf(l.W, "%s: %s\n", name, Size(size))
	}
}

func (l *Lines) Add(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file.done += n
	now := time.Now()
	if now.After(l.next) {
		every := l.Every
		if every <= 0 {
			every = 10 * time.Second
		}
		l.next = now.Add(every)
		rate := float64(l.file.done-l.file.lastN) / now.Sub(l.file.lastT).Seconds()
		l.file.lastT, l.file.lastN = now, l.file.done
		fmt.Fprintf(l.W, "%s: %s of %s (%s/s)\n", l.name, Size(l.file.done), Size(l.file.size), Size(int64(rate)))
	}
}

func (l *Lines) FileDone(r FileResult, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.W, doneLine(r, err))
}

func (l *Lines) Note(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.W, msg)
}

func (l *Lines) End() {}

// doneLine is the line printed when a file finishes or fails.
func doneLine(r FileResult, err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("%s: stopped at %s of %s", r.Local, Size(r.Resumed+r.Fetched), Size(r.Size))
	case err != nil:
		return fmt.Sprintf("%s: failed at %s of %s: %v", r.Local, Size(r.Resumed+r.Fetched), Size(r.Size), err)
	}
	var b strings.Builder
	if r.Skipped {
		fmt.Fprintf(&b, "%s: already complete (%s)", r.Local, Size(r.Size))
	} else {
		fmt.Fprintf(&b, "%s: done, %s", r.Local, Size(r.Size))
		if r.Resumed > 0 {
			fmt.Fprintf(&b, " (resumed at %s, fetched %d bytes)", Size(r.Resumed), r.Fetched)
		}
	}
	if r.SHA256 != "" {
		fmt.Fprintf(&b, "\nsha256 %s  %s", r.SHA256, r.Local)
	}
	return b.String()
}

// Size formats a byte count with binary units: "512 B", "1.5 KiB", "200.0 MiB".
func Size(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PiB", f/1024)
}

// ProgressFor draws bars when out is a terminal, else prints plain lines.
func ProgressFor(out io.Writer) Progress {
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return NewBar(out, func() int {
			w, _, _ := term.GetSize(int(f.Fd()))
			return w
		})
	}
	return &Lines{W: out}
}
