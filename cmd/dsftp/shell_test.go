//go:build linux

package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// writeFile writes n random bytes (or content) to dir/name.
func writeFile(t *testing.T, dir, name string, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeBig writes mib MiB that differ in every MiB block and returns the
// file's sha256.
func writeBig(t *testing.T, p string, mib int) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	rand.Read(block)
	h := sha256.New()
	for i := 0; i < mib; i++ {
		binary.LittleEndian.PutUint64(block, uint64(i))
		f.Write(block)
		h.Write(block)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// shellSession drives `dsftp shell` in tmux and splits its output by
// command.
type shellSession struct {
	t *testing.T
	x *testenv.Tmux
}

var promptRe = regexp.MustCompile(`^dsftp( [^>]*)?>( |$)`)

func (s *shellSession) prompts() int {
	n := 0
	for _, l := range strings.Split(s.x.History(), "\n") {
		if promptRe.MatchString(l) {
			n++
		}
	}
	return n
}

// waitPrompt waits until the history holds n prompt lines and returns the
// lines between the (n-1)th prompt and the nth.
func (s *shellSession) waitPrompt(n int, timeout time.Duration) string {
	s.t.Helper()
	var out string
	if !testenv.Poll(timeout, 30*time.Millisecond, func() bool {
		lines := strings.Split(s.x.History(), "\n")
		var idx []int
		for i, l := range lines {
			if promptRe.MatchString(l) {
				idx = append(idx, i)
			}
		}
		if len(idx) < n {
			return false
		}
		out = strings.Join(lines[idx[n-2]+1:idx[n-1]], "\n")
		return true
	}) {
		s.t.Fatalf("timed out waiting for prompt %d; screen:\n%s", n, s.x.Screen())
	}
	return out
}

// run types line, presses Enter and returns what the command printed: the
// lines after the last prompt line that shows the command, up to the next
// prompt. Searching for the echoed command, rather than counting prompts,
// keeps a prompt that readline redraws while keys arrive (which happens
// under load) from being taken for the command's end.
func (s *shellSession) run(line string) string {
	s.t.Helper()
	from := s.prompts() - 1
	s.x.Type(line)
	s.x.Keys("Enter")
	var out string
	if !testenv.Poll(60*time.Second, 30*time.Millisecond, func() bool {
		lines := strings.Split(s.x.History(), "\n")
		var prompts []int
		for i, l := range lines {
			if promptRe.MatchString(l) {
				prompts = append(prompts, i)
			}
		}
		if from < 0 || from >= len(prompts) {
			return false
		}
		echo := -1
		for _, i := range prompts[from:] {
			if strings.HasSuffix(strings.TrimRight(lines[i], " "), "> "+line) {
				echo = i
			}
		}
		for _, i := range prompts[from:] {
			if echo >= 0 && i > echo {
				out = strings.Join(lines[echo+1:i], "\n")
				return true
			}
		}
		return false
	}) {
		s.t.Fatalf("timed out waiting for %q to finish; screen:\n%s", line, s.x.Screen())
	}
	return out
}

// expect runs line and checks that its output matches every regexp.
func (s *shellSession) expect(line string, res ...string) string {
	s.t.Helper()
	out := s.run(line)
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(out) {
			s.t.Fatalf("%q printed:\n%s\nwant a match for %q", line, out, re)
		}
	}
	return out
}

// complete types partial, presses Tab and waits for the edited line to
// match want (the whole current line, prompt included).
// waitPeer runs list_peers until row matches its output (30 s at most).
func (s *shellSession) waitPeer(row *regexp.Regexp) {
	s.t.Helper()
	var out string
	if !testenv.Poll(45*time.Second, 500*time.Millisecond, func() bool { out = s.run("list_peers"); return row.MatchString(out) }) {
		s.t.Fatalf("no row matching %s in list_peers:\n%s", row, out)
	}
}

func (s *shellSession) complete(partial, want string) {
	s.t.Helper()
	s.x.Type(partial)
	s.x.Keys("Tab")
	// capture-pane drops trailing blanks.
	s.x.WaitScreen(`(?m)^`+regexp.QuoteMeta(strings.TrimRight(want, " "))+`$`, 10*time.Second)
}

func TestShell(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Binary(t)
	share := t.TempDir()
	writeFile(t, share, "photos/cat.jpg", "meow")
	writeFile(t, share, "my file.txt", "spaces")
	writeFile(t, share, `it's "quoted".txt`, "quotes")
	writeFile(t, share, "dir with space/inner.txt", "inner")
	writeFile(t, share, "dir with space/deeper/more.txt", "more")
	writeFile(t, share, "sub/a.txt", "a")
	writeFile(t, share, "x", "top x")
	writeFile(t, share, "etc/x", "etc x")
	bigSum := writeBig(t, filepath.Join(share, "big.bin"), 200)
	sshd := testenv.StartSSHD(t, share)
	dl := t.TempDir()
	other := testenv.NewKey(t, t.TempDir(), "other")

	x := testenv.StartTmux(t, dl, 160, 50, bin, "shell", "--no-share",
		"--identity", sshd.Client.Path,
		"--peer", "alice="+sshd.URL(),
		"--peer", "mallory="+strings.Replace(sshd.URL(), sshd.HostKey.Fingerprint(), other.Fingerprint(), 1),
	)
	s := &shellSession{t: t, x: x}
	x.WaitScreen(`(?m)^dsftp>`, 30*time.Second)
	if !strings.Contains(x.Screen(), "type help for the commands") {
		t.Fatalf("no banner:\n%s", x.Screen())
	}

	s.expect("help", `list_peers`, `connect \[peer\]`, `get \[-r\] \[-f\] \[--sha256\]`, `lcd`, `lpwd`, `lls`, `disconnect`, `exit`)
	s.expect("help get", `(?s)get \[-r\].*resumes`)
	s.expect("ls", `error: ls: not connected: use connect PEER`)
	s.expect("frobnicate", `error: unknown command frobnicate`)
	s.expect("lsit_peers", `did you mean list_peers\?`)
	s.expect("list_peers", `(?m)^  alice +127\.0\.0\.1:\d+ +flag +SHA256:`, `(?m)^  mallory `)
	s.expect("connect", `which peer\? connect one of: alice, mallory`)
	s.expect("connect alcie", `error: connect: unknown peer alcie; did you mean alice\?`)
	s.expect("connect mallory", `error: connect: .*host key mismatch for mallory .*refusing to connect`)

	// Completion of a command, then of a peer name.
	s.complete("conn", "dsftp> connect ")
	s.complete("al", "dsftp> connect alice ")
	s.x.Keys("Enter")
	s.waitPrompt(s.prompts(), 30*time.Second)
	x.WaitScreen(`connected to alice\n(?m)^dsftp alice:/>`, 30*time.Second)

	s.expect("list_peers", `(?m)^\* alice `)
	s.expect("ls", `(?m)^big\.bin$`, `(?m)^dir with space/$`, `(?m)^it's "quoted"\.txt$`, `(?m)^my file\.txt$`, `(?m)^photos/$`)
	s.expect("ls -l", `(?m)^drwx\S* +\d+ \d{4}-\d\d-\d\d \d\d:\d\d photos/$`, `(?m)^-rw-r--r-- +209715200 .* big\.bin$`, `(?m)^-rw-r--r-- +6 .* my file\.txt$`)
	s.expect("ls nope", `error: ls: /nope: no such file or directory`)

	// Directory completion: a unique match keeps the word open with "/".
	s.complete("cd ph", "dsftp alice:/> cd photos/")
	x.Keys("Enter")
	x.WaitScreen(`(?m)^dsftp alice:/photos>`, 10*time.Second)
	s.expect("pwd", `(?m)^alice:/photos$`)
	s.expect("ls", `(?m)^cat\.jpg$`)
	s.expect("cd /nope", `error: cd: /nope: no such file or directory`)
	s.expect("cd ../my file.txt", `error: cd: too many arguments`)
	s.expect(`cd "../my file.txt"`, `error: cd: /my file.txt: not a directory`)
	s.expect("cd ..", ``)
	s.expect("pwd", `(?m)^alice:/$`)

	// Names with spaces and quotes: completed escaped, and quoted.
	s.complete("get my", `dsftp alice:/> get my\ file.txt `)
	x.Keys("Enter")
	x.WaitScreen(`my file\.txt: done, 6 B`, 30*time.Second)
	s.complete(`get "it`, `dsftp alice:/> get "it's \"quoted\".txt" `)
	x.Keys("Enter")
	x.WaitScreen(`it's "quoted"\.txt: done, 6 B`, 30*time.Second)
	s.complete(`cd 'dir`, `dsftp alice:/> cd 'dir with space/`)
	x.Keys("C-u")
	for name, want := range map[string]string{"my file.txt": "spaces", `it's "quoted".txt`: "quotes"} {
		if b, err := os.ReadFile(filepath.Join(dl, name)); err != nil || string(b) != want {
			t.Fatalf("downloaded %q: %q, %v", name, b, err)
		}
	}
	// The same file again is already complete; a different local file
	// is kept unless -f.
	s.expect(`get "my file.txt"`, `my file\.txt: already complete \(6 B\)`)
	// (Another size: a file of the remote size written in the same
	// second as the remote one would count as already complete.)
	os.WriteFile(filepath.Join(dl, "my file.txt"), []byte("my own copy"), 0o644)
	s.expect(`get "my file.txt"`, `error: get: .*my file\.txt already exists \(use -f to overwrite\)`)
	if b, _ := os.ReadFile(filepath.Join(dl, "my file.txt")); string(b) != "my own copy" {
		t.Fatalf("get without -f overwrote a local file")
	}
	s.expect(`get -f "my file.txt"`, `my file\.txt: done`)
	if b, _ := os.ReadFile(filepath.Join(dl, "my file.txt")); string(b) != "spaces" {
		t.Fatalf("get -f did not overwrite: %q", b)
	}
	s.expect("get nope", `error: get: /nope: no such file or directory`)
	s.expect(`get "dir with space"`, `is a directory: use get -r`)

	// Local side.
	s.expect("lpwd", `(?m)^`+regexp.QuoteMeta(dl)+`$`)
	dest := filepath.Join(t.TempDir(), "dest dir")
	os.Mkdir(dest, 0o755)
	s.complete("lcd "+filepath.Dir(dest)+"/de", "dsftp alice:/> lcd "+filepath.Dir(dest)+`/dest\ dir/`)
	x.Keys("Enter")
	s.expect("lpwd", `(?m)^`+regexp.QuoteMeta(dest)+`$`)
	s.expect("lcd /nope", `error: lcd: /nope: no such file or directory`)

	s.expect(`get -r --sha256 "dir with space"`, `dir with space/deeper/more\.txt: done, 4 B`, `dir with space/inner\.txt: done, 5 B`,
		`sha256 `+sha("inner")+`  dir with space/inner\.txt`, `2 files, 9 B`)
	s.expect("lls", `(?m)^dir with space/$`)
	s.expect(`lls -l "dir with space"`, `(?m)^-rw-r--r-- +5 .* inner\.txt$`, `(?m)^drwx\S* .* deeper/$`)

	// Paths that climb out of the share or the download directory.
	s.expect("cd sub", ``)
	s.expect("get ../x", `x: done, 5 B`)
	s.expect("get -f /etc/x", `x: done, 5 B`)
	s.expect("get ../../../etc/x nested", `nested: done, 5 B`)
	if b, _ := os.ReadFile(filepath.Join(dest, "x")); string(b) != "etc x" {
		t.Fatalf("dest/x = %q, want the peer's /etc/x", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "nested")); string(b) != "etc x" {
		t.Fatalf("dest/nested = %q", b)
	}
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Fatalf("/etc/x exists on this machine")
	}
	list, _ := os.ReadDir(filepath.Dir(dest))
	if len(list) != 1 {
		t.Fatalf("download escaped into %s: %d entries", filepath.Dir(dest), len(list))
	}
	s.expect("cd /", ``)

	// A big get: progress bar; freeze the peer, Ctrl-C, resume.
	n := s.prompts()
	x.Type("get big.bin")
	x.Keys("Enter")
	part := filepath.Join(dest, "big.bin.part")
	testenv.WaitFor(t, 60*time.Second, "the .part file to grow", func() bool { return fileSize(part) >= 24<<20 })
	if err := sshd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { sshd.Signal(syscall.SIGCONT) }
	t.Cleanup(cont)
	screen := x.WaitScreen(`big\.bin +\[=*>? *\] +\d+% [\d.]+ MiB/200\.0 MiB [1-9][\d.]* \S+/s ETA \d\d:\d\d`, 10*time.Second)
	t.Logf("screen with a progress bar:\n%s", screen)
	if os.Getenv("DSFTP_SCREEN") != "" {
		os.WriteFile(os.Getenv("DSFTP_SCREEN"), []byte(screen+"\n"), 0o644)
	}
	start := time.Now()
	x.Keys("C-c")
	out := s.waitPrompt(n+1, 15*time.Second)
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Ctrl-C took %v against a frozen peer", time.Since(start))
	}
	if !strings.Contains(out, "error: get: interrupted; the .part file is kept") {
		t.Fatalf("Ctrl-C during get printed:\n%s", out)
	}
	kept := fileSize(part)
	if kept < 24<<20 || kept >= 200<<20 {
		t.Fatalf(".part after Ctrl-C has %d bytes", kept)
	}
	cont()
	out = s.expect("get --sha256 big.bin", `big\.bin: done, 200\.0 MiB \(resumed at [\d.]+ MiB, fetched \d+ bytes\)`, `sha256 `+bigSum+`  big\.bin`)
	fetched := regexp.MustCompile(`fetched (\d+) bytes`).FindStringSubmatch(out)[1]
	if got := fileSHA(t, filepath.Join(dest, "big.bin")); got != bigSum {
		t.Fatalf("big.bin sha256 %s, want %s", got, bigSum)
	}
	t.Logf("resumed big.bin from %d bytes, fetched %s of %d", kept, fetched, 200<<20)

	// The peer dies: a clear error, and the shell reconnects once it is back.
	sshd.Signal(syscall.SIGKILL)
	s.expect("ls", `error: ls: `)
	sshd.Restart(t)
	// The pool waits a moment (backoff) before dialing a failed peer again.
	if !testenv.Poll(20*time.Second, 500*time.Millisecond, func() bool {
		out = s.run("ls photos")
		if !regexp.MustCompile(`(?m)^cat\.jpg$`).MatchString(out) && !strings.Contains(out, "error: ls: ") {
			t.Fatalf("ls after the peer came back:\n%s", out)
		}
		return regexp.MustCompile(`(?m)^cat\.jpg$`).MatchString(out)
	}) {
		t.Fatalf("ls after the peer came back:\n%s", out)
	}

	s.expect("disconnect", `disconnected from alice`)
	x.WaitScreen(`(?m)^dsftp>`, 5*time.Second)
	s.expect("disconnect", `error: disconnect: not connected`)
	s.expect("connect alice", `connected to alice`)

	x.Keys("C-d")
	testenv.WaitFor(t, 10*time.Second, "the shell to exit on Ctrl-D", x.Dead)

	// exit leaves too.
	y := testenv.StartTmux(t, dl, 100, 20, bin, "shell", "--no-share")
	y.WaitScreen(`(?m)^dsftp>`, 30*time.Second)
	s2 := &shellSession{t: t, x: y}
	s2.expect("list_peers", `no peers yet`)
	s2.expect("connect", `no peers yet`)
	y.Type("exit")
	y.Keys("Enter")
	testenv.WaitFor(t, 10*time.Second, "the shell to exit on exit", y.Dead)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The shell shares its working directory (unless --no-share), as mount
// does: another dsftp downloads from it.
func TestShellSharesWorkingDirectory(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Binary(t)
	dir := t.TempDir()
	keys := t.TempDir()
	writeFile(t, dir, "shared file.txt", "from the shell's share")
	bigSum := writeBig(t, filepath.Join(dir, "eight.bin"), 8)
	hostKey := testenv.NewKey(t, keys, "host")
	client := testenv.NewKey(t, keys, "client")
	authKeys := filepath.Join(keys, "authorized_keys")
	os.WriteFile(authKeys, []byte(client.Public()+"\n"), 0o600)

	x := testenv.StartTmux(t, dir, 120, 30, bin, "shell", "--listen", "127.0.0.1:0", "--discovery", "off",
		"--host-key", hostKey.Path, "--authorized-keys", authKeys)
	screen := x.WaitScreen(`dsftp share ready on port \d+(?s:.*)dsftp>`, 30*time.Second)
	port := regexp.MustCompile(`dsftp share ready on port (\d+)`).FindStringSubmatch(screen)[1]
	if !strings.Contains(screen, "host key      "+hostKey.Fingerprint()) {
		t.Fatalf("share banner without the host key:\n%s", screen)
	}
	url := "sh=sftp://dsftp@127.0.0.1:" + port + "?fingerprint=" + hostKey.Fingerprint()
	dest := t.TempDir()
	get := func(args ...string) (string, int) {
		n := runDsftp(t, testenv.NodeOptions{Dir: dest}, append([]string{"get", "--identity", client.Path, "--peer", url, "--sha256"}, args...)...)
		return n.Text(), n.ExitCode()
	}
	out, code := get("sh:shared file.txt")
	if code != 0 {
		t.Fatalf("get from the shell's share: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "shared file.txt")); string(b) != "from the shell's share" {
		t.Fatalf("downloaded %q", b)
	}
	out, code = get("sh:/eight.bin")
	if code != 0 || !strings.Contains(out, "sha256 "+bigSum+"  eight.bin") {
		t.Fatalf("get eight.bin from the shell's share: %d\n%s", code, out)
	}
	// The shell still answers.
	s := &shellSession{t: t, x: x}
	s.expect("lls", `(?m)^shared file\.txt$`)
}
