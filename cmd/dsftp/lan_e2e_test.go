//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// These tests run the real dsftp binary with --discovery lan: on loopback
// (--lan-interface lo, a random --lan-port) or inside network namespaces
// on a bridge the test makes. Nothing is sent on the host's interfaces.

// lanMount is one `dsftp mount` sharing its own small folder.
type lanMount struct {
	name string
	dir  string // the folder it shares
	mnt  string // where it mounts the others, as seen from its namespace
	proc *testenv.Node
	ns   *testenv.Netns
}

// path returns p inside the mount, as the test process can reach it: in a
// namespace the mount lives in the dsftp process's own mount namespace
// (ip netns exec makes one), reachable through /proc/PID/root.
func (m *lanMount) path(p ...string) string {
	base := m.mnt
	if m.ns != nil {
		base = filepath.Join(fmt.Sprintf("/proc/%d/root", m.proc.Cmd.Process.Pid), m.mnt)
	}
	return filepath.Join(append([]string{base}, p...)...)
}

func (m *lanMount) list(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(m.path())
	if err != nil {
		t.Fatalf("%s: list mount: %v", m.name, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (m *lanMount) waitList(t *testing.T, want ...string) {
	t.Helper()
	start := time.Now()
	var last []string
	logged := false
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to list %v", m.name, want), func() bool {
		last = m.list(t)
		if slices.Equal(last, want) {
			return true
		}
		if !logged && time.Since(start) > 29*time.Second {
			logged = true
			t.Logf("%s still lists %v", m.name, last)
		}
		return false
	})
}

// stop interrupts dsftp like Ctrl-C and checks it unmounted and exited.
func (m *lanMount) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	_ = m.proc.Cmd.Process.Signal(syscall.SIGINT)
	defer func() { t.Logf("%s stopped in %v", m.name, time.Since(start).Round(time.Millisecond)) }()
	if _, ok := m.proc.Wait(20 * time.Second); !ok {
		t.Fatalf("%s did not exit within 20 s of SIGINT", m.name)
	}
	if m.ns == nil && testenv.Mounted(m.mnt) {
		t.Errorf("%s left %s mounted", m.name, m.mnt)
	}
}

// startLANMount starts `dsftp mount` in a fresh folder holding
// whoami.txt, so its share is that folder. Extra args are appended.
func startLANMount(t *testing.T, ns *testenv.Netns, name string, args ...string) *lanMount {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "whoami.txt"), []byte("I am "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startLANMountIn(t, ns, name, dir, filepath.Join(t.TempDir(), "peers"), args...)
}

// startLANMountIn starts `dsftp mount mnt` in dir, so dir is its share.
func startLANMountIn(t *testing.T, ns *testenv.Netns, name, dir, mnt string, args ...string) *lanMount {
	t.Helper()
	testenv.RequireFUSE(t)
	m := &lanMount{name: name, ns: ns, dir: dir, mnt: mnt}
	if err := os.MkdirAll(m.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	o := testenv.NodeOptions{Env: []string{"DSFTP_DISCORD_TOKEN="}, Dir: m.dir}
	if ns != nil {
		o.NS = ns.Name
	} else {
		testenv.CleanupUnmount(t, m.mnt)
	}
	m.proc = testenv.StartNode(t, o, append([]string{"mount", m.mnt, "--name", name, "--discovery", "lan"}, args...)...)
	m.proc.WaitRecord(t, 60*time.Second, "mounted")
	return m
}

func loopbackArgs(port int) []string {
	return []string{"--lan-interface", "lo", "--lan-port", strconv.Itoa(port), "--listen", "127.0.0.1:0"}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// Three dsftp processes on one host, all on 127.0.0.1 only, find each
// other and read each other's files.
func TestLANThreeOnOneHost(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	names := []string{"alice", "bob", "carol"}
	var ms []*lanMount
	for _, n := range names {
		ms = append(ms, startLANMount(t, nil, n, loopbackArgs(port)...))
	}
	start := time.Now()
	others := func(m *lanMount) []string {
		return slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == m.name })
	}
	// Everyone knows everyone (so every share accepts every client key)
	// before anyone reads.
	for _, m := range ms {
		m.waitList(t, others(m)...)
	}
	t.Logf("all three list each other %v after the last one mounted", time.Since(start).Round(time.Millisecond))
	for _, m := range ms {
		for _, o := range others(m) {
			if got := readFile(t, m.path(o, "whoami.txt")); got != "I am "+o+"\n" {
				t.Errorf("%s reads %s/whoami.txt = %q", m.name, o, got)
			}
		}
	}
	// A clean exit leaves the others' mounts at once (not after 90 s).
	ms[2].stop(t)
	left := time.Now()
	ms[0].waitList(t, "bob")
	ms[1].waitList(t, "alice")
	t.Logf("carol gone from the others' mounts %v after she stopped", time.Since(left).Round(time.Millisecond))
	ms[0].stop(t)
	ms[1].stop(t)
}

// Two machines (network namespaces on one bridge) find each other over
// the LAN and mount each other's shares.
func TestLANTwoNamespaces(t *testing.T) {
	testenv.RequireFUSE(t)
	hosts := testenv.NewLAN(t, 2, testenv.LANOptions{IPv4: true})
	a := startLANMount(t, &hosts[0], "alice")
	b := startLANMount(t, &hosts[1], "bob")
	a.waitList(t, "bob")
	b.waitList(t, "alice")
	if got := readFile(t, a.path("bob", "whoami.txt")); got != "I am bob\n" {
		t.Errorf("alice reads bob/whoami.txt = %q", got)
	}
	if got := readFile(t, b.path("alice", "whoami.txt")); got != "I am alice\n" {
		t.Errorf("bob reads alice/whoami.txt = %q", got)
	}
	a.stop(t)
	b.stop(t)
}

// broadcastConn is a socket on the LAN port (shared, like dsftp's) that
// can send to 127.255.255.255, which every dsftp on loopback receives.
func broadcastConn(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "udp")
	defer f.Close()
	c, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// A forged LAN advert, a rename attempt and a flood of garbage change
// nothing: the mount still lists the real peer, under its own name, and
// reads its files.
func TestLANHostileAdverts(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	conn := broadcastConn(t, port)
	alice := startLANMount(t, nil, "alice", loopbackArgs(port)...)
	bob := startLANMount(t, nil, "bob", loopbackArgs(port)...)
	alice.waitList(t, "bob")
	bob.waitList(t, "alice")

	// Capture one of bob's real adverts off the wire.
	var real *advert.Decoded
	var realText string
	buf := make([]byte, 8192)
	deadline := time.Now().Add(60 * time.Second)
	for real == nil {
		conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no advert from bob heard: %v", err)
		}
		d, err := advert.Decode(string(buf[:n]))
		if err == nil && d.Name == "bob" {
			real, realText = d, string(buf[:n])
		}
	}
	bcast := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: port}
	send := func(b []byte) {
		if _, err := conn.WriteToUDP(b, bcast); err != nil {
			t.Fatal(err)
		}
	}

	// Forged: bob's advert with other addresses and mallory's client key,
	// bob's signature kept.
	evil := testenv.NewSigner(t)
	payloadB64, sigB64, _ := strings.Cut(strings.TrimPrefix(realText, advert.Prefix), ".")
	raw, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil {
		t.Fatal(err)
	}
	var fa advert.Advert
	if err := json.Unmarshal(raw, &fa); err != nil {
		t.Fatal(err)
	}
	fa.Addrs = []string{"127.0.0.1:1"}
	fa.ClientKeys = []string{advert.MarshalKey(evil.PublicKey())}
	fa.Seq += 1000
	body, _ := json.Marshal(fa)
	send([]byte(advert.Prefix + base64.RawURLEncoding.EncodeToString(body) + "." + sigB64))
	// A validly signed advert by mallory claiming the name "bob".
	m := real.Advert
	m.Seq, m.Instance, m.ClientKeys = 1, advert.NewInstance(), nil
	m.Addrs = []string{"127.0.0.1:1"}
	claim, err := advert.Encode(m, evil)
	if err != nil {
		t.Fatal(err)
	}
	send([]byte(claim))
	// Garbage, some of it looking like adverts.
	for i := 0; i < 3000; i++ {
		g := bytes.Repeat([]byte{byte(i)}, 1+i%1500)
		if i%3 == 0 {
			g = append([]byte(advert.Prefix), g...)
		}
		send(g)
	}
	// A genuine newcomer after the flood: anyone on the LAN may join, so
	// alice's share accepts the client key its advert carries.
	friendHost, friendClient := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	hello, err := advert.Encode(advert.Advert{
		Name: "friend", Addrs: []string{"127.0.0.1:1"},
		ClientKeys: []string{advert.MarshalKey(friendClient.PublicKey())},
		Guild:      lan.AdvertGuild, Channel: lan.AdvertChannel, Instance: advert.NewInstance(), Seq: 1,
		Issued: now.Unix(), Expires: now.Add(time.Minute).Unix(),
	}, friendHost)
	if err != nil {
		t.Fatal(err)
	}
	// Repeated, as its announcements would be: the flood came from the
	// same address (loopback), so its first adverts may be rate limited.
	testenv.WaitFor(t, 30*time.Second, "alice to list friend", func() bool {
		send([]byte(hello))
		time.Sleep(200 * time.Millisecond)
		return slices.Contains(alice.list(t), "friend")
	})
	// The name claim shows up under a different name, and bob stays bob.
	malloryName := "bob-" + shortFP(ssh.FingerprintSHA256(evil.PublicKey()))
	alice.waitList(t, "bob", malloryName, "friend")
	alicePort, _ := alice.proc.ShareReady(t)
	if err := sshLogin(t, alicePort, friendClient); err != nil {
		t.Errorf("alice's share refused the client key of a live LAN advert: %v", err)
	}
	if got := readFile(t, alice.path("bob", "whoami.txt")); got != "I am bob\n" {
		t.Errorf("after the attack alice reads bob/whoami.txt = %q", got)
	}
	// Mallory's client key came only in the forged advert: alice's share
	// must refuse it. Bob's key, from his real adverts, works.
	if err := sshLogin(t, alicePort, evil); err == nil {
		t.Error("alice's share accepted a client key from a forged advert")
	}
	// (On bob's own mount mallory's claim is the first "bob", so it is
	// listed there under that name; alice is what matters here.)
	testenv.WaitFor(t, 30*time.Second, "bob to list alice", func() bool {
		return slices.Contains(bob.list(t), "alice")
	})
	if got := readFile(t, bob.path("alice", "whoami.txt")); got != "I am alice\n" {
		t.Errorf("bob reads alice/whoami.txt = %q", got)
	}
	for _, m := range []*lanMount{alice, bob} {
		select {
		case <-m.proc.Done():
			t.Fatalf("%s exited during the attack:\n%s", m.name, m.proc.Output.String())
		default:
		}
	}
	alice.stop(t)
	bob.stop(t)
}

// The demo as `make demo` runs it: start, list, read, Ctrl-C, and nothing
// is left mounted or running.
func TestLANDemo(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := testenv.Binary(t)
	root := testenv.ModuleRoot(t)
	mnt := filepath.Join(t.TempDir(), "peers")
	p := testenv.Start(t, []string{
		"DSFTP_BIN=" + bin, "DEMO_MOUNT=" + mnt,
		fmt.Sprintf("DEMO_LAN_PORT=%d", testenv.FreeUDPPort(t)), "DSFTP_DISCORD_TOKEN=",
	}, filepath.Join(root, "testdata/demo/demo.sh"))
	testenv.CleanupUnmount(t, mnt)
	start := time.Now()
	p.WaitOutput(t, "demo ready", 90*time.Second)
	t.Logf("demo ready after %v", time.Since(start).Round(time.Millisecond))
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("demo mount lists %v, want [alice bob]", names)
	}
	want, _ := os.ReadFile(filepath.Join(root, "testdata/demo/alice/hello.txt"))
	if got := readFile(t, filepath.Join(mnt, "alice/hello.txt")); got != string(want) || len(want) == 0 {
		t.Errorf("alice/hello.txt through the demo = %q, want %q", got, want)
	}
	var pids []int
	for _, m := range regexp.MustCompile(`started \w+ \(pid (\d+)\)`).FindAllStringSubmatch(p.Output.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		pids = append(pids, n)
	}
	if len(pids) != 3 {
		t.Fatalf("demo reported %d processes, want 3:\n%s", len(pids), p.Output.String())
	}
	_ = p.Cmd.Process.Signal(syscall.SIGINT)
	werr, ok := p.Wait(30 * time.Second)
	if !ok {
		t.Fatal("demo did not stop within 30 s of Ctrl-C")
	}
	if werr != nil {
		t.Errorf("demo after Ctrl-C: %v, want exit 0:\n%s", werr, p.Output.String())
	}
	if testenv.Mounted(mnt) {
		t.Error("demo left its mount behind")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("demo left pid %d running", pid)
		}
	}
	if !strings.Contains(p.Output.String(), "nothing is mounted or running") {
		t.Errorf("demo did not report its cleanup:\n%s", p.Output.String())
	}
}

// Without --discovery and without a Discord token, LAN is chosen with a
// one-line notice; a bad --discovery is a usage error (exit 2). (mount
// --no-share --discovery lan used to be one; it now works with a
// client-only advert: TestGetAndMountNoShareOnLAN.)
func TestLANDefaultNotice(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	// No token, no token file, no $DSFTP_DISCOVERY: the default applies.
	env := []string{"DSFTP_DISCORD_TOKEN=", "DSFTP_DISCOVERY=", "XDG_CONFIG_HOME=" + t.TempDir()}
	p := testenv.StartNode(t, testenv.NodeOptions{Env: env}, "share", t.TempDir(), "--lan-interface", "lo",
		"--lan-port", strconv.Itoa(port), "--listen", "127.0.0.1:0")
	if r := p.WaitRecord(t, 30*time.Second, instance.LANNotice); r.Level != "WARN" {
		t.Errorf("the LAN notice is logged at %s; want WARN", r.Level)
	}
	p.ShareReady(t)
	p.Stop(t, syscall.SIGINT, 20*time.Second)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"share", "--discovery", "smoke-signals"}, "want discord, lan or off"},
		{[]string{"share", "--discovery", "lan", "--lan-port", "0"}, "--lan-port 0"},
	} {
		n := runDsftp(t, testenv.NodeOptions{}, c.args...)
		if n.ExitCode() != exitUsage || !strings.Contains(n.Text(), c.want) {
			t.Errorf("dsftp %v: exit %d, want exit 2 saying %q\n%s", c.args, n.ExitCode(), c.want, n.Output)
		}
	}
}

// shortFP is the suffix the registry gives a second claimant of a name.
func shortFP(fp string) string {
	var b strings.Builder
	for _, r := range strings.TrimPrefix(fp, "SHA256:") {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			if b.Len() == 8 {
				break
			}
		}
	}
	return b.String()
}

// sshLogin tries to log in to 127.0.0.1:port with key.
func sshLogin(t *testing.T, port int, key ssh.Signer) error {
	t.Helper()
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &ssh.ClientConfig{
		User:            "dsftp",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // only the login is under test
		Timeout:         10 * time.Second,
	})
	if err == nil {
		c.Close()
	}
	return err
}
