package main

// Big directories: one directory of empty files per size, listed on a
// fresh mount of dsftp and of sshfs (default options) in the same run,
// `ls -f` (names only) first, then `ls -l`, and the mount's peak RSS.

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

var (
	bigdirOnly  = flag.Bool("bigdir-only", false, "measure only the big-directory table (for quicker experiments)")
	bigdirSizes = flag.String("bigdir-sizes", "10000,100000,150000,200000", "entries of the big directories, comma-separated")
	bigdir1M    = flag.Bool("bigdir-1m", false, "add a directory of 1,000,000 entries to the big-directory table (minutes: sshfs's `ls -l` alone takes over a minute)")
	bigdirOff   = flag.Bool("no-bigdir", false, "skip the big-directory table")
)

// bigdirRow is one size's measurements on one server.
type bigdirRow struct {
	n                  int
	dsLsF, shLsF       float64 // seconds
	dsLsL, shLsL       float64
	dsRSS, shRSS       float64 // MiB, peak (VmHWM) of the mount process
	dsListed, shListed int     // names `ls -f` printed, without . and ..
}

// bigdirCounts parses -bigdir-sizes (and -bigdir-1m).
func bigdirCounts() []int {
	var out []int
	for _, f := range strings.Split(*bigdirSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fatal("bad -bigdir-sizes entry %q: want a positive number of entries", f)
		}
		out = append(out, n)
	}
	if *bigdir1M {
		out = append(out, 1_000_000)
	}
	return out
}

// makeBigDirs writes data/bigN with N empty files for every size (reused
// when a previous run with -work left them complete).
func makeBigDirs(data string, counts []int) {
	for _, n := range counts {
		dir := bigDirPath(data, n)
		if es, err := os.ReadDir(dir); err == nil && len(es) == n {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: writing %d empty files to %s\n", n, dir)
		check(os.MkdirAll(dir, 0o755))
		for i := range n {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("IMG_%07d.jpg", i)))
			check(err)
			check(f.Close())
		}
	}
	probe := filepath.Join(data, "probe")
	if _, err := os.Stat(probe); err != nil {
		check(os.WriteFile(probe, []byte("probe\n"), 0o644))
	}
}

func bigDirPath(data string, n int) string { return filepath.Join(data, fmt.Sprintf("big%d", n)) }

// runBigDirs measures every size on every server and prints the table.
func runBigDirs(servers []*server, work, data string) {
	if *bigdirOff {
		return
	}
	counts := bigdirCounts()
	makeBigDirs(data, counts)
	ds := client{"dsftp", func(s *server, dir string) (*exec.Cmd, error) { return mountDsftp(*dsftpBin, s, dir) }}
	sh := client{"sshfs", func(s *server, dir string) (*exec.Cmd, error) { return mountSSHFS(s, dir) }}
	for _, s := range servers {
		var rows []bigdirRow
		for i, n := range counts {
			// The server's own cache warm for both clients.
			_, _ = os.ReadDir(bigDirPath(data, n))
			r := bigdirRow{n: n}
			order := []client{ds, sh}
			if i%2 == 1 {
				order = []client{sh, ds}
			}
			// -clients without sshfs: dsftp alone (sshfs's `ls -l` of a
			// million entries takes many minutes).
			order = slices.DeleteFunc(order, func(c client) bool {
				return !slices.Contains(strings.Split(*only1, ","), c.name)
			})
			// Small directories list in tens of milliseconds, within a
			// run's noise: they are measured -runs times, alternating,
			// and the medians shown; up to 200,000 entries three times
			// (sshfs's `ls -l` takes seconds), a million once.
			rounds := 1
			switch {
			case n < 100000:
				rounds = *runs
			case n <= 200000:
				rounds = min(*runs, 3)
			}
			var ms [2][3][]float64 // client, metric (ls -f, ls -l, RSS)
			for round := range rounds {
				for j := range order {
					c := order[(j+round)%len(order)]
					f, l, rss, listed := measureBigDir(s, c, work, n)
					k := 0
					if c.name == "dsftp" {
						r.dsListed = listed
					} else {
						k = 1
						r.shListed = listed
					}
					ms[k][0], ms[k][1], ms[k][2] = append(ms[k][0], f), append(ms[k][1], l), append(ms[k][2], rss)
				}
			}
			if len(ms[0][0]) > 0 {
				r.dsLsF, r.dsLsL, r.dsRSS = median(ms[0][0]), median(ms[0][1]), median(ms[0][2])
			}
			if len(ms[1][0]) > 0 {
				r.shLsF, r.shLsL, r.shRSS = median(ms[1][0]), median(ms[1][1]), median(ms[1][2])
			}
			fmt.Fprintf(os.Stderr, "bench: %s, %d entries: ls -f %.3f s / %.3f s, ls -l %.3f s / %.3f s (dsftp / sshfs), dsftp RSS %.0f MiB, listed %d / %d\n",
				s.name, n, r.dsLsF, r.shLsF, r.dsLsL, r.shLsL, r.dsRSS, r.dsListed, r.shListed)
			rows = append(rows, r)
		}
		printBigDirs(s, rows)
	}
}

// measureBigDir mounts afresh and times `ls -f`, then `ls -l`, of the
// directory of n entries; it returns both in seconds, the mount's peak
// RSS in MiB and how many names `ls -f` printed.
func measureBigDir(s *server, c client, work string, n int) (lsF, lsL, rss float64, listed int) {
	mnt := filepath.Join(work, "mnt-"+c.name)
	check(os.MkdirAll(mnt, 0o755))
	root := mnt
	if c.name == "dsftp" {
		root = filepath.Join(mnt, "peer")
	}
	cmd, err := c.mount(s, mnt)
	check(err)
	defer unmount(mnt, cmd)
	// Connected, and nothing of the big directory asked yet.
	if _, err := os.Stat(filepath.Join(root, "probe")); err != nil {
		fatal("%s on %s: %v", c.name, s.name, err)
	}
	dir := filepath.Join(root, filepath.Base(bigDirPath("", n)))
	var out countWriter
	lsF = timeCmdTo(&out, "ls", "-f", dir)
	listed = out.lines - 2 // . and ..
	lsL = timeCmd("ls", "-l", dir)
	rss = peakRSSMiB(mountPIDs[mnt])
	return lsF, lsL, rss, listed
}

// countWriter counts the lines written to it.
type countWriter struct{ lines int }

func (w *countWriter) Write(b []byte) (int, error) {
	w.lines += strings.Count(string(b), "\n")
	return len(b), nil
}

// printBigDirs prints the table for one server, with the ratios.
func printBigDirs(s *server, rows []bigdirRow) {
	fmt.Printf("\n**Big directories, server: %s** (fresh mounts; `ls -f` first, then `ls -l`; medians of %d rounds below 100,000 entries, of 3 up to 200,000, one run above; ratios: sshfs ÷ dsftp, >1 is better for dsftp; RSS: peak, VmHWM)\n\n", s.name, *runs)
	fmt.Printf("| entries | `ls -f` dsftp | `ls -f` sshfs | then `ls -l` dsftp | `ls -l` sshfs | mount RSS | sshfs RSS | `ls -f` ratio | `ls -l` ratio |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		note := ""
		if r.dsListed != r.n {
			note = fmt.Sprintf(" (dsftp listed %d)", r.dsListed)
		}
		fmt.Printf("| %s%s | %s | %s | %s | %s | %.0f MiB | %.0f MiB | %.2f× | %.2f× |\n",
			thousands(r.n), note, ms(r.dsLsF), ms(r.shLsF), ms(r.dsLsL), ms(r.shLsL), r.dsRSS, r.shRSS, r.shLsF/r.dsLsF, r.shLsL/r.dsLsL)
	}
}

func ms(s float64) string { return thousands(int(s*1000+0.5)) + " ms" }

// thousands writes n with commas every three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
