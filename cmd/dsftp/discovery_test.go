//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/testdata/discordfake"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// fakeDiscord is an in-process fake Discord that child dsftp processes
// reach over loopback.
type fakeDiscord struct {
	*discordfake.Server
	guild, channel string
	n              int
}

func newFakeDiscord(t *testing.T) *fakeDiscord {
	t.Helper()
	f := &fakeDiscord{Server: discordfake.New()}
	f.guild = f.AddGuild("friends")
	f.channel = f.AddChannel(f.guild, "dsftp")
	if err := f.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// bot adds a bot and returns its token.
func (f *fakeDiscord) bot(mod ...func(*discordfake.Bot)) string {
	f.n++
	b := discordfake.Bot{Token: "tok" + strconv.Itoa(f.n) + "x" + strconv.FormatInt(time.Now().UnixNano(), 36), Name: "bot" + strconv.Itoa(f.n), MessageContent: true, Guilds: []string{f.guild}}
	for _, m := range mod {
		m(&b)
	}
	f.AddBot(b)
	return b.Token
}

// env is the environment of a dsftp child using token against f.
func (f *fakeDiscord) env(t *testing.T, token string) []string {
	return []string{"DSFTP_DISCORD_TOKEN=" + token, "DSFTP_DISCORD_API=" + f.URL(), "XDG_CONFIG_HOME=" + t.TempDir()}
}

// advertOf returns the live advert in the channel with the given name.
func (f *fakeDiscord) advertOf(name string) (*advert.Decoded, string) {
	for _, m := range f.Messages(f.channel) {
		if d, err := advert.Decode(m.Content); err == nil && d.Name == name {
			return d, m.ID
		}
	}
	return nil, ""
}

// firstAdvert returns when the first advert with the given name was
// posted.
func (f *fakeDiscord) firstAdvert(name string) time.Time {
	for _, m := range f.Messages(f.channel) {
		if d, err := advert.Decode(m.Content); err == nil && d.Name == name {
			return m.Time
		}
	}
	return time.Time{}
}

// startDiscordShare runs `dsftp share dir` advertising as name and waits
// until its advert is posted; it returns the node and its port.
func startDiscordShare(t *testing.T, f *fakeDiscord, token, name, dir string, args ...string) (*testenv.Node, int) {
	t.Helper()
	args = append([]string{"share", dir, "--listen", "127.0.0.1:0", "--name", name}, args...)
	p := testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, token)}, args...)
	port, _ := p.ShareReady(t)
	p.WaitRecord(t, 60*time.Second, "advertising in Discord", "name", name)
	return p, port
}

// sftpLs lists / on 127.0.0.1:port with the OpenSSH client, trusting only
// hostKey and logging in with keyFile.
func sftpLs(t *testing.T, port int, hostKey ssh.PublicKey, keyFile string) (string, error) {
	t.Helper()
	sftpPath := testenv.Require(t, "sftp")[0]
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	line := "[127.0.0.1]:" + strconv.Itoa(port) + " " + advert.MarshalKey(hostKey) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("ls -1\nget hello.txt\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sftpPath,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile="+keyFile,
		"-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
		"-b", batch, "-P", strconv.Itoa(port), "dsftp@127.0.0.1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		got, rerr := os.ReadFile(filepath.Join(dir, "hello.txt"))
		if rerr != nil || string(got) != "hello from the share\n" {
			t.Errorf("downloaded hello.txt = %q, %v", got, rerr)
		}
	}
	return string(out), err
}

// TestShareInDiscord runs two `dsftp share` processes against the fake:
// both advertise, `dsftp peers` lists them, a key from a live advert in the
// channel may log in with the real OpenSSH client and a key from outside
// may not, and a clean exit deletes the advert.
func TestShareInDiscord(t *testing.T) {
	testenv.Require(t, "sftp")
	f := newFakeDiscord(t)
	tokA, tokB, tokC := f.bot(), f.bot(), f.bot()
	dirA := t.TempDir()
	os.WriteFile(filepath.Join(dirA, "hello.txt"), []byte("hello from the share\n"), 0o644)
	a, portA := startDiscordShare(t, f, tokA, "alice", dirA)
	b, _ := startDiscordShare(t, f, tokB, "bob", t.TempDir())

	// dsftp peers lists both, with the fingerprints their banners show.
	if n := runDsftp(t, testenv.NodeOptions{Env: []string{"DSFTP_DISCORD_TOKEN="}}, "peers", "--json", "--discovery", "discord", "--discord-api", f.URL()); n.ExitCode() == 0 {
		t.Fatalf("dsftp peers without a token succeeded:\n%s", n.Output)
	}
	// The channel's history is read once: the answer comes within 3 s. (A
	// race-enabled binary sleeps 1 s at exit unless told not to.)
	start := time.Now()
	n := runDsftp(t, testenv.NodeOptions{Env: append(f.env(t, tokC), "GORACE=atexit_sleep_ms=0")}, "peers", "--json")
	if n.ExitCode() != 0 {
		t.Fatalf("dsftp peers --json: exit %d\n%s", n.ExitCode(), n.Output)
	}
	out := []byte(n.Stdout())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("dsftp peers took %v with Discord; want at most 3 s", took)
	} else {
		t.Logf("dsftp peers took %v with Discord", took.Round(10*time.Millisecond))
	}
	var rows []instance.Listed
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("parse %s: %v", out, err)
	}
	if len(rows) != 2 || rows[0].Name != "alice" || rows[1].Name != "bob" {
		t.Fatalf("dsftp peers: %s", out)
	}
	for i, p := range []*testenv.Node{a, b} {
		if _, fp := p.ShareReady(t); fp != rows[i].Fingerprint {
			t.Errorf("%s's share has host key %s; dsftp peers lists %s", rows[i].Name, fp, rows[i].Fingerprint)
		}
	}
	if n := runDsftp(t, testenv.NodeOptions{Env: f.env(t, tokC)}, "peers"); n.ExitCode() != 0 || !strings.Contains(n.Stdout(), "NAME") || !strings.Contains(n.Stdout(), "alice") {
		t.Errorf("dsftp peers table: exit %d\n%s", n.ExitCode(), n.Output)
	}

	// Trust: alice's share accepts a client key only while a live advert
	// in the channel carries it. The client trusts only the advertised
	// host key.
	aliceAdvert, _ := f.advertOf("alice")
	if aliceAdvert == nil {
		t.Fatal("no advert of alice's in the channel")
	}
	keys := t.TempDir()
	carolKey := testenv.NewKey(t, keys, "carol")
	stranger := testenv.NewKey(t, keys, "stranger")
	if out, err := sftpLs(t, portA, aliceAdvert.HostKey, stranger.Path); err == nil {
		t.Fatalf("alice's share let in a key from outside the channel:\n%s", out)
	}
	if out, err := sftpLs(t, portA, aliceAdvert.HostKey, carolKey.Path); err == nil {
		t.Fatalf("alice's share let in carol before carol advertised:\n%s", out)
	}
	carolHost := testenv.NewSigner(t)
	now := time.Now()
	text, err := advert.Encode(advert.Advert{
		Name: "carol", Addrs: []string{"127.0.0.1:9"}, Guild: f.guild, Channel: f.channel,
		ClientKeys: []string{carolKey.Public()}, Instance: advert.NewInstance(), Seq: 1,
		Issued: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
	}, carolHost)
	if err != nil {
		t.Fatal(err)
	}
	carolMsg, err := f.Post(tokC, f.channel, text)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "alice's share to accept carol's advertised key", func() bool {
		_, err := sftpLs(t, portA, aliceAdvert.HostKey, carolKey.Path)
		return err == nil
	})
	if out, err := sftpLs(t, portA, carolHost.PublicKey(), carolKey.Path); err == nil {
		t.Errorf("the client accepted a host key alice did not advertise:\n%s", out)
	}
	f.Delete(f.channel, carolMsg)
	testenv.WaitFor(t, 15*time.Second, "alice's share to refuse carol after her advert was deleted", func() bool {
		_, err := sftpLs(t, portA, aliceAdvert.HostKey, carolKey.Path)
		return err != nil
	})

	// A clean exit deletes the advert.
	if err := a.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	testenv.WaitFor(t, 10*time.Second, "alice's advert to be deleted", func() bool {
		d, _ := f.advertOf("alice")
		return d == nil
	})
	t.Logf("alice's advert was deleted %v after SIGINT", time.Since(sent).Round(time.Millisecond))
	if err, ok := a.Wait(10 * time.Second); !ok || err != nil {
		t.Errorf("alice did not exit cleanly: %v (exited %v)", err, ok)
	}
	if d, _ := f.advertOf("bob"); d == nil {
		t.Error("bob's advert vanished too")
	}
}

// TestDiscordStartErrors: a bad token or a missing intent ends `dsftp share`
// at once with one clear line and exit code 1; bad flags are usage errors.
func TestDiscordStartErrors(t *testing.T) {
	f := newFakeDiscord(t)
	noIntent := f.bot(func(b *discordfake.Bot) { b.MessageContent = false })
	cases := []struct {
		name, token string
		args        []string
		code        int
		want        string
	}{
		{"bad token", "wrong", nil, exitError, "Discord rejected the bot token"},
		{"intent", noIntent, nil, exitError, "Message Content intent"},
		{"channel", f.bot(), []string{"--channel", "nope"}, exitError, "#dsftp"},
		{"allow-user", f.bot(), []string{"--allow-user", "alice"}, exitUsage, "numeric Discord user ID"},
		{"name", f.bot(), []string{"--name", "a/b"}, exitUsage, "--name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"share", t.TempDir(), "--listen", "127.0.0.1:0"}, c.args...)
			p := testenv.RunNode(t, testenv.NodeOptions{Env: f.env(t, c.token)}, 20*time.Second, args...)
			code, out := p.ExitCode(), p.Text()
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, want %d, output lacks %q:\n%s", code, c.code, c.want, out)
			}
			if n := strings.Count(out, "dsftp: "); n != 1 {
				t.Errorf("%d error lines, want one:\n%s", n, out)
			}
		})
	}
}

// TestFakeNotLinked: the fake Discord is test-only code and must not end
// up in the dsftp binary.
func TestFakeNotLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "github.com/dsftp/dsftp/peers/discord\n") {
		t.Fatal("go list output does not list peers/discord; the check proves nothing")
	}
	if strings.Contains(string(out), "discordfake") {
		t.Error("cmd/dsftp depends on the fake Discord")
	}
}
