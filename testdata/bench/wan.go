package main

// WAN mode: the same servers, reached through testdata/wanproxy (a delay
// and a rate limit each way), and workloads where round trips decide:
// small files, listings, one 32 MiB file. Only dsftp and sshfs (default)
// run, each workload on a fresh mount.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dsftp/dsftp/testdata/wanproxy"
)

// wanSetting is one simulated path: a round-trip time and a rate.
type wanSetting struct {
	rtt  time.Duration
	rate int64 // bytes per second each way
	spec string
}

// wanFlag collects -wan RTT,RATE (repeatable).
type wanFlag []wanSetting

func (w *wanFlag) String() string {
	var s []string
	for _, x := range *w {
		s = append(s, x.spec)
	}
	return strings.Join(s, " ")
}

// Set parses "30ms,100mbit": a round-trip time and a rate in kbit, mbit or
// gbit per second (each way).
func (w *wanFlag) Set(v string) error {
	rttS, rateS, ok := strings.Cut(v, ",")
	if !ok {
		return fmt.Errorf("want RTT,RATE such as 30ms,100mbit")
	}
	rtt, err := time.ParseDuration(rttS)
	if err != nil || rtt < 0 {
		return fmt.Errorf("bad round-trip time %q: want e.g. 30ms", rttS)
	}
	rate, err := parseRate(rateS)
	if err != nil {
		return err
	}
	*w = append(*w, wanSetting{rtt: rtt, rate: rate, spec: v})
	return nil
}

func parseRate(s string) (int64, error) {
	units := []struct {
		suffix string
		bits   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}}
	l := strings.ToLower(s)
	for _, u := range units {
		if num, ok := strings.CutSuffix(l, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f <= 0 {
				break
			}
			return int64(f * u.bits / 8), nil
		}
	}
	return 0, fmt.Errorf("bad rate %q: want e.g. 100mbit, 20mbit or 1gbit", s)
}

var (
	wanSettings wanFlag
	wanOnly     = flag.String("only", "", "WAN workloads to run, comma-separated `KEYS` out of first,known,ls,grep,cp,cat,find,tar,du,par (default: all)")
)

func init() {
	flagVar(&wanSettings, "wan", "`RTT,RATE` (e.g. 30ms,100mbit; repeatable): run the WAN benchmark through a delaying, rate-limiting proxy instead of the loopback one")
}

// wanSelected reports whether -only lets the workload with this key run.
func wanSelected(key string) bool {
	return *wanOnly == "" || slices.Contains(strings.Split(*wanOnly, ","), key)
}

// WAN data set sizes.
const (
	wanSmallFiles = 200 // in wanSmallDirs directories, wanSmallSize each
	wanSmallDirs  = 8
	wanSmallSize  = 5 << 10
	wanCopyFiles  = 100
	wanCopySize   = 64 << 10
	wanBigSize    = 32 << 20
)

// wanWorkloads in table order. Each runs on a fresh mount; root is the
// share's root as the client shows it. floorRTs and floorBytes give the
// workload's floor (wanFloor).
var wanWorkloads = []struct {
	key        string // for -only
	name       string
	floorRTs   int
	floorBytes int64
	run        func(root string) float64
}{
	{"ls", "`ls -lR`, 200 files in 8 dirs", 4, wanSmallListing, func(r string) float64 { return timeCmd("ls", "-lR", filepath.Join(r, "small")) }},
	{"grep", "`grep -r` over 200 × 5 KiB", 6, wanSmallListing + wanSmallFiles*wanSmallSize, func(r string) float64 { return timeCmdOK1("grep", "-r", "NEEDLE", filepath.Join(r, "small")) }},
	{"cp", "`cp -r` of 100 × 64 KiB", 4, wanCopyFiles * wanCopySize, func(r string) float64 { return timeCopy(filepath.Join(r, "copy")) }},
	{"cat", "`cat` of 32 MiB", 2, wanBigSize, func(r string) float64 { return timeRead(filepath.Join(r, "big32.bin"), wanBigSize) }},
	{"find", "`find`, 200 files in 8 dirs", 4, wanSmallListing, func(r string) float64 { return timeCmd("find", filepath.Join(r, "small")) }},
	{"tar", "`tar c` of 100 × 64 KiB", 4, wanCopyFiles * wanCopySize, func(r string) float64 { return timeCmd("tar", "cf", "-", "-C", r, "copy") }}, // to a pipe: tar skips reading for /dev/null
	{"du", "`du -s`, 200 files in 8 dirs", 4, wanSmallListing, func(r string) float64 { return timeCmd("du", "-s", filepath.Join(r, "small")) }},
	{"par", "200 × 5 KiB, 16 parallel", 6, wanSmallListing + wanSmallFiles*wanSmallSize, func(r string) float64 { return parallelReadAll(filepath.Join(r, "small"), 16) }},
}

// The floor of a workload is the least time the link allows it: its
// round trips times the RTT plus its bytes at the rate. Round trips count
// the request/reply steps that depend on each other for an ideal client
// that pipelines everything else and runs all files or directories of a
// level at once. The timed part of every workload starts connected, after
// a stat in the share's root, so the root is listed. A listing is two
// steps (OPENDIR, then READDIR with its handle), a read too (OPEN, then
// the READs): `ls -lR small` is small's listing, then its 8
// subdirectories' (4); `grep -r` those and then every file's (6); `cp -r
// copy` the listing of copy, then its files (4).
const (
	// wanListingEntry is about what an SFTP NAME reply spends per entry:
	// a short name, its ls -l line and the attributes.
	wanListingEntry = 110
	wanSmallListing = (wanSmallFiles + wanSmallDirs) * wanListingEntry
	// wanHandshakeRTs are the SSH and SFTP set-up steps: TCP, the
	// version and key exchanges (2), the service request and a public
	// key login with its signature (2), the session channel, and the
	// subsystem request with SFTP's INIT behind it.
	wanHandshakeRTs = 7
	// wanFirstRTs: the handshake, then the root's listing.
	wanFirstRTs = wanHandshakeRTs + 2
	// wanRootListing: the entries of the share's root (small, copy,
	// big32.bin) and the handshake's few KB of keys and signatures.
	wanRootListing = 3*wanListingEntry + 4<<10
)

// wanFloor is the least time in seconds a workload of rts dependent round
// trips and this many bytes takes on ws.
func wanFloor(ws wanSetting, rts int, bytes int64) float64 {
	return float64(rts)*ws.rtt.Seconds() + float64(bytes)/float64(ws.rate)
}

// wanFirstListing is measured apart: it includes starting the mount.
const wanFirstListing = "mount → first listing"

// wanKnownListing is measured apart too: the first listing of the
// share's root a while after the mount started, with the peer known all
// that time (connected in the background, for a client that does so).
const (
	wanKnownListing = "first `ls` of the peer 3 s after the mount"
	wanKnownAfter   = 3 * time.Second
)

// runWAN runs every setting against every server and prints one table per
// setting.
func runWAN(work string, servers []*server) {
	data := filepath.Join(work, "data")
	makeWANData(data)
	clients := []client{
		{"dsftp", func(s *server, dir string) (*exec.Cmd, error) { return mountDsftp(*dsftpBin, s, dir) }},
		{"sshfs", func(s *server, dir string) (*exec.Cmd, error) { return mountSSHFS(s, dir) }},
	}
	if *oldBin != "" {
		clients = slices.Insert(clients, 1, client{"dsftp-old", func(s *server, dir string) (*exec.Cmd, error) { return mountDsftp(*oldBin, s, dir) }})
	}
	// -clients leaves out dsftp or sshfs (sshfs takes most of the time);
	// -dsftp-old always runs when given.
	clients = slices.DeleteFunc(clients, func(c client) bool {
		return c.name != "dsftp-old" && !slices.Contains(strings.Split(*only1, ","), c.name)
	})
	for _, ws := range wanSettings {
		// results[server][client][workload] = samples
		results := map[string]map[string]map[string][]float64{}
		var proxied []*server
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, s := range servers {
			p := wanproxy.New(s.addr, wanproxy.Link{Delay: ws.rtt / 2, Rate: ws.rate})
			check(p.Listen())
			wg.Go(func() { _ = p.Run(ctx) })
			ps := *s
			ps.addr = p.Addr()
			_, port, _ := strings.Cut(ps.addr, ":")
			ps.port, _ = strconv.Atoi(port)
			proxied = append(proxied, &ps)
			results[s.name] = map[string]map[string][]float64{}
			for _, c := range clients {
				results[s.name][c.name] = map[string][]float64{}
			}
		}
		for round := 0; round < *runs; round++ {
			for _, s := range proxied {
				order := slices.Clone(clients)
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, c := range order {
					fmt.Fprintf(os.Stderr, "bench: WAN %s, round %d/%d, %s on %s\n", ws.spec, round+1, *runs, c.name, s.name)
					for k, v := range runWANSuite(s, c, work) {
						results[s.name][c.name][k] = append(results[s.name][c.name][k], v)
					}
				}
			}
		}
		cancel()
		wg.Wait()
		printWANTable(ws, servers, clients, results)
	}
}

// runWANSuite measures every workload once for one client on one server.
func runWANSuite(s *server, c client, work string) map[string]float64 {
	out := map[string]float64{}
	mnt := filepath.Join(work, "mnt-"+c.name)
	check(os.MkdirAll(mnt, 0o755))
	root := mnt
	if strings.HasPrefix(c.name, "dsftp") {
		root = filepath.Join(mnt, "peer")
	}
	// Mount → first listing: from starting the client to a listing of the
	// share's root with its entries.
	if wanSelected("first") {
		out[wanFirstListing] = timeFirstListing(s, c, mnt, root)
	}
	if wanSelected("known") {
		out[wanKnownListing] = timeKnownListing(s, c, mnt, root)
	}
	for _, w := range wanWorkloads {
		if !wanSelected(w.key) {
			continue
		}
		cmd, err := c.mount(s, mnt)
		check(err)
		// Both start timing with a live connection and nothing cached:
		// sshfs connects while mounting, dsftp on first access.
		if _, err := os.Stat(filepath.Join(root, "big32.bin")); err != nil {
			fatal("%s on %s: %v", c.name, s.name, err)
		}
		out[w.name] = w.run(root)
		if strings.HasPrefix(c.name, "dsftp") {
			out[wanPeakRSS+w.name] = peakRSSMiB(cmd.Process.Pid)
		}
		unmount(mnt, cmd)
		if *verbose {
			fmt.Fprintf(os.Stderr, "  %-34s %.3f\n", w.name, out[w.name])
		}
	}
	return out
}

// timeFirstListing measures from starting the client to a listing of the
// share's root with its entries.
func timeFirstListing(s *server, c client, mnt, root string) float64 {
	start := time.Now()
	cmd, err := c.mount(s, mnt)
	check(err)
	for {
		if ents, err := os.ReadDir(root); err == nil && len(ents) > 0 {
			break
		}
		if time.Since(start) > 60*time.Second {
			fatal("%s on %s: no listing of %s within 60 s", c.name, s.name, root)
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(start).Seconds()
	unmount(mnt, cmd)
	return d
}

// timeKnownListing measures the first listing of the share's root
// wanKnownAfter after starting the client.
func timeKnownListing(s *server, c client, mnt, root string) float64 {
	start := time.Now()
	cmd, err := c.mount(s, mnt)
	check(err)
	time.Sleep(time.Until(start.Add(wanKnownAfter)))
	t := time.Now()
	ents, err := os.ReadDir(root)
	d := time.Since(t).Seconds()
	if err != nil || len(ents) == 0 {
		fatal("%s on %s: listing %s: %d entries, %v", c.name, s.name, root, len(ents), err)
	}
	unmount(mnt, cmd)
	return d
}

// wanPeakRSS prefixes the results that hold the dsftp mount's peak RSS
// after a workload.
const wanPeakRSS = "rss:"

// peakRSSMiB is a process's peak resident set (VmHWM) in MiB, or 0 when
// it cannot be read.
func peakRSSMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// timeCmdOK1 times a command for which exit status 1 is no failure (grep
// finding nothing).
func timeCmdOK1(name string, args ...string) float64 {
	cmd := exec.Command(name, args...)
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1 && stderr.Len() == 0) {
		fatal("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return time.Since(start).Seconds()
}

// timeCopy copies dir to a fresh local directory with cp -r.
func timeCopy(dir string) float64 {
	dst, err := os.MkdirTemp("/var/tmp", "dsftp-bench-cp-")
	check(err)
	defer os.RemoveAll(dst)
	return timeCmd("cp", "-r", dir, dst)
}

func timeRead(p string, want int64) float64 {
	start := time.Now()
	if n := catFile(p); n != want {
		fatal("%s: read %d bytes, want %d", p, n, want)
	}
	return time.Since(start).Seconds()
}

// parallelReadAll reads every file below dir, workers at a time, in the
// order a walk lists them.
func parallelReadAll(dir string, workers int) float64 {
	start := time.Now()
	var files []string
	check(filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	}))
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range ch {
				b, err := os.ReadFile(p)
				check(err)
				if len(b) != wanSmallSize {
					fatal("%s: %d bytes", p, len(b))
				}
			}
		})
	}
	for _, p := range files {
		ch <- p
	}
	close(ch)
	wg.Wait()
	return time.Since(start).Seconds()
}

// makeWANData writes small/dN/fNNN.txt (text, one line in ten holds
// "needle"), copy/cNNN.bin and big32.bin, reusing what is there.
func makeWANData(dir string) {
	small := filepath.Join(dir, "small")
	if _, err := os.Stat(small); err != nil {
		line := []byte("the quick brown fox jumps over the lazy dog, needle in a haystack 0123456789\n")
		for i := range wanSmallFiles {
			d := filepath.Join(small, fmt.Sprintf("d%d", i%wanSmallDirs))
			check(os.MkdirAll(d, 0o755))
			b := bytes.Repeat(line, wanSmallSize/len(line)+1)[:wanSmallSize]
			check(os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.txt", i)), b, 0o644))
		}
	}
	cp := filepath.Join(dir, "copy")
	if _, err := os.Stat(cp); err != nil {
		check(os.MkdirAll(cp, 0o755))
		buf := make([]byte, wanCopySize)
		for i := range wanCopyFiles {
			for j := range buf {
				buf[j] = byte(i*7 + j*13)
			}
			check(os.WriteFile(filepath.Join(cp, fmt.Sprintf("c%03d.bin", i)), buf, 0o644))
		}
	}
	big := filepath.Join(dir, "big32.bin")
	if fi, err := os.Stat(big); err != nil || fi.Size() != wanBigSize {
		b := make([]byte, wanBigSize)
		for i := range b {
			b[i] = byte(i * 31 >> 8)
		}
		check(os.WriteFile(big, b, 0o644))
	}
}

// printWANTable prints one table for a setting: per workload, its floor
// (wanFloor), then each server's medians of every client, sshfs ÷ dsftp
// (>1: dsftp faster) and dsftp ÷ floor (the distance to the link's limit).
func printWANTable(ws wanSetting, servers []*server, clients []client, r map[string]map[string]map[string][]float64) {
	fmt.Printf("\n`make bench-wan`, RTT %v, %g Mbit/s each way (%s): %d run(s), seconds (medians), fresh mount per workload; floor: round trips × RTT + bytes ÷ rate; %s\n\n",
		ws.rtt, float64(ws.rate)*8/1e6, ws.spec, *runs, time.Now().UTC().Format(time.RFC3339))
	head := "| workload | floor (round trips) |"
	sep := "|---|---:|"
	for _, s := range servers {
		for _, c := range clients {
			head += fmt.Sprintf(" %s (%s) |", c.name, s.name)
			sep += "---:|"
		}
		head += " ratio | ÷ floor |"
		sep += "---:|---:|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	type row struct {
		name  string
		floor float64
		rts   int
	}
	var rows []row
	if wanSelected("first") {
		rows = append(rows, row{wanFirstListing, wanFloor(ws, wanFirstRTs, wanRootListing), wanFirstRTs})
	}
	if wanSelected("known") {
		rows = append(rows, row{wanKnownListing, wanFloor(ws, 2, 3*wanListingEntry), 2})
	}
	for _, w := range wanWorkloads {
		if wanSelected(w.key) {
			rows = append(rows, row{w.name, wanFloor(ws, w.floorRTs, w.floorBytes), w.floorRTs})
		}
	}
	var names []string
	for _, rw := range rows {
		names = append(names, rw.name)
		line := fmt.Sprintf("| %s | %.3g (%d) |", rw.name, rw.floor, rw.rts)
		for _, s := range servers {
			for _, c := range clients {
				line += fmt.Sprintf(" %.3g |", median(r[s.name][c.name][rw.name]))
			}
			d := median(r[s.name]["dsftp"][rw.name])
			a := median(r[s.name]["sshfs"][rw.name])
			ratio, toFloor := "–", "–"
			if d > 0 && a > 0 {
				ratio = fmt.Sprintf("%.2f×", a/d)
			}
			if d > 0 {
				toFloor = fmt.Sprintf("%.2f×", d/rw.floor)
			}
			line += fmt.Sprintf(" %s | %s |", ratio, toFloor)
		}
		fmt.Println(line)
	}
	printWANRSS(servers, names, r)
}

// printWANRSS prints the dsftp mount's peak RSS (VmHWM) after each
// workload, to check the bound of --prefetch-memory plus 50 MB.
func printWANRSS(servers []*server, names []string, r map[string]map[string]map[string][]float64) {
	fmt.Printf("\ndsftp mount peak RSS (VmHWM, MiB, highest of the runs):\n\n| workload |")
	for _, s := range servers {
		fmt.Printf(" %s |", s.name)
	}
	fmt.Printf("\n|---|%s\n", strings.Repeat("---:|", len(servers)))
	for _, n := range names {
		if n == wanFirstListing || n == wanKnownListing {
			continue
		}
		fmt.Printf("| %s |", n)
		for _, s := range servers {
			fmt.Printf(" %.0f |", slices.Max(append([]float64{0}, r[s.name]["dsftp"][wanPeakRSS+n]...)))
		}
		fmt.Println()
	}
}
