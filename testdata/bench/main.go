// Command bench compares `dsftp mount` with sshfs, on loopback (or with -wan
// through a delaying, rate-limiting proxy: wan.go), against
// OpenSSH's sshd and against `dsftp share`, and prints a markdown table of
// medians and ratios. It is `make bench`, not a test: it needs root, FUSE,
// sshd, sshfs and a few GiB of disk and memory, and takes minutes.
//
// Each run mounts afresh (so "cold" means an empty client cache), and the
// clients take turns within each round so that drifts in machine load hit
// all of them alike.
package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/testdata/testenv"
)

var (
	dsftpBin = flag.String("dsftp", "bin/dsftp", "dsftp binary to benchmark (build it without -race)")
	runs     = flag.Int("runs", 5, "rounds; each client runs each benchmark once per round")
	bigSize  = flag.Int64("size", 1<<30, "size of the sequential-read file in bytes")
	nDirs    = flag.Int("dirs", 100, "directories in the listing tree")
	nFiles   = flag.Int("files", 10000, "files in the listing tree")
	nPar     = flag.Int("par-files", 1000, "files of 64 KiB for the parallel-read benchmark")
	workDir  = flag.String("work", "", "directory for the test data (default: a new one under /var/tmp, removed at the end)")
	only     = flag.String("servers", "sshd,share", "servers to benchmark against")
	verbose  = flag.Bool("v", false, "print every measurement")
	only1    = flag.String("clients", "dsftp,sshfs,sshfs-aes", "clients to benchmark (for quicker experiments)")
	seqOnly  = flag.Bool("seq-only", false, "measure only the sequential read and its CPU (for quicker experiments)")
	extra    = flag.String("dsftp-flags", "", "extra flags for every `dsftp mount`, space-separated (for experiments)")
	profDir  = flag.String("cpuprofile", "", "write a CPU profile of every dsftp mount (its whole life: with -par-only, mostly the parallel read) to `DIR`/mount-N.pprof")
	parOnly  = flag.Bool("par-only", false, "measure only the parallel small-file read, on a fresh mount (for quicker experiments)")
	parXargs = flag.Bool("par-xargs", false, "read the parallel row's files with `ls | sed | xargs -P16 -n8 cat` (16 cat processes of 8 files each, in name order) instead of 16 readers of our own")
	oldBin   = flag.String("dsftp-old", "", "a second dsftp binary to benchmark as client \"dsftp-old\" (add it to -clients), e.g. main's build for before/after")
)

// client is a way of mounting a server.
type client struct {
	name  string
	mount func(s *server, dir string) (*exec.Cmd, error)
}

// server is an SFTP server on loopback.
type server struct {
	name    string
	addr    string // 127.0.0.1:port
	port    int
	user    string
	dir     string // directory sshfs and dsftp see as the share's root
	fp      string // host key fingerprint
	key     string // client private key file
	cmd     *exec.Cmd
	cleanup func()
}

// metric names, in table order.
var metrics = []string{
	"seq read 1 GiB, cold (MiB/s)",
	"ls -lR cold (s)",
	"ls -lR warm (s)",
	"find cold (s)",
	"find warm (s)",
	"1000 × 64 KiB, 16 parallel (s)",
	"client CPU per GiB read (s)",
}

// higherBetter marks throughput metrics.
var higherBetter = map[string]bool{}

// labelMetrics names the sequential read and the parallel one after the
// flags that set their sizes.
func labelMetrics() {
	size := fmt.Sprintf("%d MiB", *bigSize>>20)
	if *bigSize == 1<<30 {
		size = "1 GiB"
	}
	metrics[0] = fmt.Sprintf("seq read %s, cold (MiB/s)", size)
	how := "16 parallel"
	if *parXargs {
		how = "xargs -P16 -n8 cat"
	}
	metrics[5] = fmt.Sprintf("%s × 64 KiB, %s (s)", thousands(*nPar), how)
	higherBetter[metrics[0]] = true
}

func main() {
	flag.Parse()
	labelMetrics()
	if os.Geteuid() != 0 {
		fatal("bench needs root (sshd, FUSE mounts, dropping caches)")
	}
	for _, tool := range []string{"/usr/sbin/sshd", "sshfs", "fusermount3", *dsftpBin} {
		if _, err := exec.LookPath(tool); err != nil {
			fatal("%s not found: %v (make deps; make build)", tool, err)
		}
	}
	bin, _ := filepath.Abs(*dsftpBin)
	*dsftpBin = bin
	live.mounts = map[string]*exec.Cmd{}
	teardownOnSignal()
	defer teardown()
	work := *workDir
	if work == "" {
		var err error
		work, err = os.MkdirTemp("/var/tmp", "dsftp-bench-")
		check(err)
		live.work = work
	}
	data := filepath.Join(work, "data")
	fmt.Fprintf(os.Stderr, "bench: writing test data to %s\n", data)
	switch {
	case *bigdirOnly:
		check(os.MkdirAll(data, 0o755))
	case len(wanSettings) == 0:
		makeData(data)
	default:
		makeWANData(data)
	}
	key := filepath.Join(work, "client_key")
	pub := writeKey(key)

	servers := startServers(work, data, key, pub)
	if len(wanSettings) > 0 {
		if !runsSet() {
			*runs = 1 // round trips, not CPU, decide: one run is telling
		}
		runWAN(work, servers)
		return
	}
	if *bigdirOnly {
		runBigDirs(servers, work, data)
		return
	}
	clients := []client{
		{"dsftp", func(s *server, dir string) (*exec.Cmd, error) { return mountDsftp(*dsftpBin, s, dir) }},
		{"dsftp-old", func(s *server, dir string) (*exec.Cmd, error) { return mountDsftp(*oldBin, s, dir) }},
		{"sshfs", func(s *server, dir string) (*exec.Cmd, error) { return mountSSHFS(s, dir) }},
		{"sshfs-aes", func(s *server, dir string) (*exec.Cmd, error) {
			return mountSSHFS(s, dir, "-o", "Ciphers=aes128-gcm@openssh.com")
		}},
	}
	clients = slices.DeleteFunc(clients, func(c client) bool {
		return !slices.Contains(strings.Split(*only1, ","), c.name)
	})
	// results[server][client][metric] = samples
	results := map[string]map[string]map[string][]float64{}
	for _, s := range servers {
		results[s.name] = map[string]map[string][]float64{}
		for _, c := range clients {
			results[s.name][c.name] = map[string][]float64{}
		}
	}
	// Warm the server side: the source file in the page cache.
	catFile(filepath.Join(data, "big.bin"))
	for round := 0; round < *runs; round++ {
		for _, s := range servers {
			order := slices.Clone(clients)
			// Rotate who goes first each round.
			for i := 0; i < round%len(order); i++ {
				order = append(order[1:], order[0])
			}
			for _, c := range order {
				fmt.Fprintf(os.Stderr, "bench: round %d/%d, %s on %s\n", round+1, *runs, c.name, s.name)
				m := runSuite(s, c, work)
				for k, v := range m {
					results[s.name][c.name][k] = append(results[s.name][c.name][k], v)
				}
			}
		}
	}
	printTable(servers, clients, results)
	runBigDirs(servers, work, data)
}

// startServers starts the servers of -servers, registered for teardown.
func startServers(work, data, key, pub string) []*server {
	var servers []*server
	for _, s := range strings.Split(*only, ",") {
		var srv *server
		switch s {
		case "sshd":
			srv = startSSHD(work, data, key, pub)
		case "share":
			srv = startShare(work, data, key, pub)
		default:
			fatal("unknown server %q", s)
		}
		servers = append(servers, srv)
		live.Lock()
		live.servers = append(live.servers, srv)
		live.Unlock()
	}
	return servers
}

// runSuite measures every metric once for one client on one server.
func runSuite(s *server, c client, work string) map[string]float64 {
	out := map[string]float64{}
	mnt := filepath.Join(work, "mnt-"+c.name)
	check(os.MkdirAll(mnt, 0o755))
	root := func() string {
		if strings.HasPrefix(c.name, "dsftp") {
			return filepath.Join(mnt, "peer")
		}
		return mnt
	}()
	withMount := func(fn func()) {
		cmd, err := c.mount(s, mnt)
		check(err)
		defer unmount(mnt, cmd)
		// sshfs connects while mounting; dsftp connects on first access.
		// Stat one file so both start timing with a live connection and
		// nothing else cached.
		if _, err := os.Stat(filepath.Join(root, "big.bin")); err != nil {
			fatal("%s on %s: %v", c.name, s.name, err)
		}
		fn()
	}
	if *parOnly {
		withMount(func() { out[metrics[5]] = measureParallel(s, c, mnt, root) })
		return out
	}
	if !*seqOnly {
		runListings(withMount, root, out)
	}
	withMount(func() {
		pids := clientPIDs(s, mnt)
		big := filepath.Join(root, "big.bin")
		evict(big)
		cpu0 := cpuSeconds(pids)
		srv0 := serverCPU(s)
		start := time.Now()
		n := catFile(big)
		d := time.Since(start).Seconds()
		cpu := cpuSeconds(pids) - cpu0
		srv := serverCPU(s) - srv0
		if n != *bigSize {
			fatal("%s on %s: read %d bytes of big.bin, want %d", c.name, s.name, n, *bigSize)
		}
		out[metrics[0]] = float64(n) / (1 << 20) / d
		out[metrics[6]] = cpu / (float64(n) / (1 << 30))
		if *verbose && srv >= 0 {
			fmt.Fprintf(os.Stderr, "  server CPU per GiB read (s)      %.3f\n", srv/(float64(n)/(1<<30)))
		}
		if *verbose {
			fmt.Fprintf(os.Stderr, "  client peak RSS after it (MiB)   %.0f\n", peakRSSMiB(pids[0]))
		}
		if !*seqOnly {
			out[metrics[5]] = measureParallel(s, c, mnt, root)
		}
	})
	if *verbose {
		for _, m := range metrics {
			fmt.Fprintf(os.Stderr, "  %-34s %.3f\n", m, out[m])
		}
	}
	return out
}

// runListings measures ls -lR and find, cold and warm.
func runListings(withMount func(func()), root string, out map[string]float64) {
	withMount(func() {
		out[metrics[1]] = timeCmd("ls", "-lR", filepath.Join(root, "tree"))
		out[metrics[2]] = timeCmd("ls", "-lR", filepath.Join(root, "tree"))
	})
	withMount(func() {
		out[metrics[3]] = timeCmd("find", filepath.Join(root, "tree"))
		out[metrics[4]] = timeCmd("find", filepath.Join(root, "tree"))
	})
}

func timeCmd(name string, args ...string) float64 {
	return timeCmdTo(io.Discard, name, args...)
}

// timeCmdTo is timeCmd with the command's output written to w.
func timeCmdTo(w io.Writer, name string, args ...string) float64 {
	cmd := exec.Command(name, args...)
	cmd.Stdout = w
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fatal("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return time.Since(start).Seconds()
}

// catFile reads a file like cat does and returns the bytes read.
func catFile(p string) int64 {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	buf := make([]byte, 128<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n
		}
		check(err)
	}
}

// evict drops the file's pages from the page cache of the mount.
func evict(p string) {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	check(unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
}

// measureParallel times the parallel small-file read and, with -v or
// -par-only, prints the CPU and page faults it cost.
func measureParallel(s *server, c client, mnt, root string) float64 {
	pids := clientPIDs(s, mnt)
	cpu0, srv0, flt0 := cpuSeconds(pids), serverCPU(s), minorFaults(pids)
	var d float64
	if *parXargs {
		d = timeCmdTo(io.Discard, "sh", "-c", `cd "$1" && ls par | sed 's|^|par/|' | xargs -P16 -n8 cat`, "sh", root)
	} else {
		d = parallelRead(filepath.Join(root, "par"), 16)
	}
	if *verbose || *parOnly {
		fmt.Fprintf(os.Stderr, "  %s: parallel read %.3f s, client CPU %.2f s (%d minor faults, peak RSS %.0f MiB), server CPU %.2f s\n",
			c.name, d, cpuSeconds(pids)-cpu0, minorFaults(pids)-flt0, peakRSSMiB(pids[0]), serverCPU(s)-srv0)
	}
	return d
}

func parallelRead(dir string, workers int) float64 {
	ents, err := os.ReadDir(dir)
	check(err)
	ch := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for p := range ch {
				b, err := os.ReadFile(p)
				check(err)
				if len(b) != 64<<10 {
					fatal("%s: %d bytes", p, len(b))
				}
			}
		})
	}
	for _, e := range ents {
		ch <- filepath.Join(dir, e.Name())
	}
	close(ch)
	wg.Wait()
	return time.Since(start).Seconds()
}

// clientPIDs returns the processes doing the client's work: the mount
// process, its children, and for sshfs the ssh process it starts (which
// double-forks away from sshfs, so it is found by its command line).
func clientPIDs(s *server, mnt string) []int {
	pid := mountPIDs[mnt]
	pids := append([]int{pid}, testenv.Descendants(pid)...)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(pids, p) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "ssh" && slices.Contains(args, "-oport="+strconv.Itoa(s.port)) {
			pids = append(pids, p)
		}
	}
	return pids
}

var mountPIDs = map[string]int{}

func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return float64(ticks) / 100 // USER_HZ
}

// minorFaults is the page faults the processes took so far.
func minorFaults(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		k, _ := strconv.ParseInt(f[7], 10, 64)
		n += k
	}
	return n
}

func mountDsftp(bin string, s *server, dir string) (*exec.Cmd, error) {
	url := fmt.Sprintf("sftp://%s@%s%s?fingerprint=%s", s.user, s.addr, s.dir, s.fp)
	args := []string{"mount", dir, "--no-share", "--discovery", "off", "--log-level", "warn",
		"--identity", s.key, "--peer", "peer=" + url}
	args = append(args, strings.Fields(*extra)...)
	if *profDir != "" {
		profiles++
		args = append(args, "--cpu-profile", filepath.Join(*profDir, fmt.Sprintf("mount-%d.pprof", profiles)))
	}
	cmd := exec.Command(bin, args...)
	return startMount(cmd, dir, "")
}

var profiles int

// serverCPU is the CPU seconds the server's processes used so far, or -1
// when the server is not running.
func serverCPU(s *server) float64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return -1
	}
	pid := s.cmd.Process.Pid
	return cpuSeconds(append([]int{pid}, testenv.Descendants(pid)...))
}

func mountSSHFS(s *server, dir string, extra ...string) (*exec.Cmd, error) {
	args := []string{"-f", fmt.Sprintf("%s@127.0.0.1:%s", s.user, s.dir), dir,
		"-o", "port=" + strconv.Itoa(s.port), "-o", "IdentityFile=" + s.key,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ro"}
	args = append(args, extra...)
	return startMount(exec.Command("sshfs", args...), dir, "")
}

// startMount starts a mount command in the foreground and waits for the
// mount to appear.
func startMount(cmd *exec.Cmd, dir, _ string) (*exec.Cmd, error) {
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	mountPIDs[dir] = cmd.Process.Pid
	live.Lock()
	live.mounts[dir] = cmd
	live.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for !mounted(dir) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s did not mount %s:\n%s", cmd.Path, dir, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, nil
}

func unmount(dir string, cmd *exec.Cmd) {
	live.Lock()
	delete(live.mounts, dir)
	live.Unlock()
	if cmd.Path == *dsftpBin || (*oldBin != "" && cmd.Path == *oldBin) {
		cmd.Process.Signal(syscall.SIGTERM)
	} else if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: fusermount3 -u %s: %v %s\n", dir, err, out)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	if mounted(dir) {
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	}
}

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// makeData writes big.bin, tree/dNN/fNNNN (the listing tree) and par/ (the
// parallel-read files), reusing what a previous run with -work left.
func makeData(dir string) {
	big := filepath.Join(dir, "big.bin")
	if fi, err := os.Stat(big); err != nil || fi.Size() != *bigSize {
		check(os.MkdirAll(dir, 0o755))
		f, err := os.Create(big)
		check(err)
		rng := mrand.NewChaCha8([32]byte{1})
		w := bufio.NewWriterSize(f, 1<<20)
		_, err = io.CopyN(w, rng, *bigSize)
		check(err)
		check(w.Flush())
		check(f.Close())
	}
	tree := filepath.Join(dir, "tree")
	if _, err := os.Stat(tree); err != nil {
		for i := 0; i < *nFiles; i++ {
			d := filepath.Join(tree, fmt.Sprintf("d%03d", i%*nDirs))
			check(os.MkdirAll(d, 0o755))
			check(os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.txt", i)), []byte(strings.Repeat("x", i%2000)), 0o644))
		}
	}
	par := filepath.Join(dir, "par")
	if _, err := os.Stat(par); err != nil {
		check(os.MkdirAll(par, 0o755))
		buf := make([]byte, 64<<10)
		for i := 0; i < *nPar; i++ {
			rand.Read(buf)
			check(os.WriteFile(filepath.Join(par, fmt.Sprintf("p%04d", i)), buf, 0o644))
		}
	}
}

func writeKey(path string) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	check(err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	check(err)
	check(os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
	signer, err := ssh.NewSignerFromKey(priv)
	check(err)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startSSHD(work, data, key, pub string) *server {
	dir := filepath.Join(work, "sshd")
	check(os.MkdirAll(dir, 0o755))
	check(os.MkdirAll("/run/sshd", 0o755))
	hostKey := filepath.Join(dir, "host_key")
	writeKey(hostKey)
	ak := filepath.Join(dir, "authorized_keys")
	check(os.WriteFile(ak, []byte(pub+"\n"), 0o600))
	port := freePort()
	conf := filepath.Join(dir, "sshd_config")
	check(os.WriteFile(conf, []byte(strings.Join([]string{
		"ListenAddress 127.0.0.1:" + strconv.Itoa(port),
		"HostKey " + hostKey, "PidFile none", "AuthorizedKeysFile " + ak, "StrictModes no",
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
		"UsePAM no", "MaxStartups 100:30:200", "MaxSessions 64", "LogLevel ERROR",
		"Subsystem sftp internal-sftp", "",
	}, "\n")), 0o600))
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	waitTCP(fmt.Sprintf("127.0.0.1:%d", port))
	b, err := os.ReadFile(hostKey)
	check(err)
	signer, err := ssh.ParsePrivateKey(b)
	check(err)
	return &server{
		name: "OpenSSH sshd", addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, user: "root",
		dir: data, fp: ssh.FingerprintSHA256(signer.PublicKey()), key: key, cmd: cmd,
		cleanup: func() { cmd.Process.Kill(); cmd.Wait() },
	}
}

func startShare(work, data, key, pub string) *server {
	ak := filepath.Join(work, "share_authorized_keys")
	check(os.WriteFile(ak, []byte(pub+"\n"), 0o600))
	cmd := exec.Command(*dsftpBin, "share", data, "--listen", "127.0.0.1:0", "--discovery", "off", "--no-upnp", "--authorized-keys", ak, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	sc := bufio.NewScanner(stdout)
	var banner strings.Builder
	port := 0
	for port == 0 && sc.Scan() {
		line := sc.Text()
		banner.WriteString(line + "\n")
		if m := regexp.MustCompile(`dsftp share ready on port (\d+)`).FindStringSubmatch(line); m != nil {
			port, _ = strconv.Atoi(m[1])
		}
	}
	go io.Copy(io.Discard, stdout)
	fp := regexp.MustCompile(`host key\s+(SHA256:\S+)`).FindStringSubmatch(banner.String())
	if port == 0 || fp == nil {
		fatal("dsftp share banner without port or host key:\n%s", banner.String())
	}
	return &server{
		name: "dsftp share", addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, user: "dsftp",
		dir: "/", fp: fp[1], key: key, cmd: cmd,
		cleanup: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() },
	}
}

func waitTCP(addr string) {
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	fatal("%s does not listen", addr)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// printTable prints one table per server: medians, and dsftp's advantage
// over each sshfs variant (>1 means dsftp is better).
func printTable(servers []*server, clients []client, r map[string]map[string]map[string][]float64) {
	fmt.Printf("\n`make bench`: %d runs each, medians; file %d MiB, tree %d files in %d dirs; %s\n",
		*runs, *bigSize>>20, *nFiles, *nDirs, time.Now().UTC().Format(time.RFC3339))
	for _, s := range servers {
		fmt.Printf("\n**Server: %s** (ratios: dsftp's advantage, >1 is better for dsftp)\n\n", s.name)
		fmt.Printf("| metric | dsftp | sshfs | sshfs -o Ciphers=aes128-gcm | vs sshfs | vs sshfs-aes |\n")
		fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
		for _, m := range metrics {
			d := median(r[s.name]["dsftp"][m])
			a := median(r[s.name]["sshfs"][m])
			b := median(r[s.name]["sshfs-aes"][m])
			ratio := func(x float64) string {
				if x == 0 || d == 0 {
					return "–"
				}
				if higherBetter[m] {
					return fmt.Sprintf("%.2f×", d/x)
				}
				return fmt.Sprintf("%.2f×", x/d)
			}
			fmt.Printf("| %s | %.3g | %.3g | %.3g | %s | %s |\n", m, d, a, b, ratio(a), ratio(b))
		}
		if slices.ContainsFunc(clients, func(c client) bool { return c.name == "dsftp-old" }) {
			printOld(s, r)
		}
	}
}

// printOld prints the -dsftp-old binary's medians beside dsftp's.
func printOld(s *server, r map[string]map[string]map[string][]float64) {
	fmt.Printf("\n| metric | dsftp | dsftp-old | sshfs | vs dsftp-old |\n|---|---:|---:|---:|---:|\n")
	for _, m := range metrics {
		d, o, a := median(r[s.name]["dsftp"][m]), median(r[s.name]["dsftp-old"][m]), median(r[s.name]["sshfs"][m])
		ratio := "–"
		if d != 0 && o != 0 {
			ratio = fmt.Sprintf("%.2f×", o/d)
			if higherBetter[m] {
				ratio = fmt.Sprintf("%.2f×", d/o)
			}
		}
		fmt.Printf("| %s | %.3g | %.3g | %.3g | %s |\n", m, d, o, a, ratio)
	}
}

// flagVar registers a flag.Value (for the WAN settings in wan.go).
func flagVar(v flag.Value, name, usage string) { flag.Var(v, name, usage) }

// runsSet reports whether -runs was given.
func runsSet() bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "runs" })
	return set
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	teardown()
	os.Exit(1)
}

// live is what the bench has running: mounts and servers. However the
// bench ends (done, fatal error, Ctrl-C), teardown unmounts and stops them,
// by PID, and removes the work directory it made.
var live struct {
	sync.Mutex
	mounts  map[string]*exec.Cmd // mountpoint -> mount process
	servers []*server
	work    string // removed at teardown when the bench made it
}

func teardown() {
	live.Lock()
	defer live.Unlock()
	for dir, cmd := range live.mounts {
		_ = cmd.Process.Kill()
		_ = exec.Command("fusermount3", "-u", "-z", dir).Run()
		delete(live.mounts, dir)
	}
	for _, s := range live.servers {
		s.cleanup()
	}
	live.servers = nil
	if live.work != "" {
		os.RemoveAll(live.work)
		live.work = ""
	}
}

// teardownOnSignal makes Ctrl-C and SIGTERM leave nothing behind.
func teardownOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %v: stopping servers and unmounting\n", sig)
		teardown()
		os.Exit(130)
	}()
}
