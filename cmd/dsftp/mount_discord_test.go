//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// discordMount is one `dsftp mount` process sharing its own directory.
type discordMount struct {
	name    string
	mnt     string
	share   string
	content []byte
	proc    *testenv.Node
	port    int
	started time.Time // process started
}

// startDiscordMount runs `dsftp mount` as name, sharing a directory of its
// own, with extra flags, and waits until it is mounted.
func startDiscordMount(t *testing.T, f *fakeDiscord, token, name string, extra ...string) *discordMount {
	t.Helper()
	base := t.TempDir()
	m := &discordMount{name: name, mnt: filepath.Join(base, "peers"), share: filepath.Join(base, "share")}
	os.Mkdir(m.mnt, 0o755)
	os.Mkdir(m.share, 0o755)
	m.content = make([]byte, 300<<10)
	rand.Read(m.content)
	m.content = append([]byte("I am "+name+"\n"), m.content...)
	if err := os.WriteFile(filepath.Join(m.share, "whoami.bin"), m.content, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.CleanupUnmount(t, m.mnt)
	m.started = time.Now()
	m.proc = testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, token)}, append([]string{"mount", m.mnt,
		"--share", m.share, "--listen", "127.0.0.1:0", "--name", name, "--timeout", "5s"}, extra...)...)
	t.Cleanup(func() {
		select {
		case <-m.proc.Done():
		default:
			m.proc.Cmd.Process.Signal(syscall.SIGTERM)
			m.proc.Wait(15 * time.Second)
		}
	})
	m.port, _ = m.proc.ShareReady(t)
	m.proc.WaitRecord(t, 60*time.Second, "mounted")
	return m
}

// watcher records when each name first and last appeared in each mount.
type watcher struct {
	mu     sync.Mutex
	seen   map[[2]string]time.Time // [observer, peer] -> first seen
	gone   map[[2]string]time.Time // [observer, peer] -> first missing after seen
	stop   chan struct{}
	mounts []*discordMount
}

func watch(ms ...*discordMount) *watcher {
	w := &watcher{seen: map[[2]string]time.Time{}, gone: map[[2]string]time.Time{}, stop: make(chan struct{})}
	w.mounts = ms
	go func() {
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			w.mu.Lock()
			obs := slices.Clone(w.mounts)
			w.mu.Unlock()
			for _, o := range obs {
				ents, err := os.ReadDir(o.mnt)
				if err != nil {
					continue
				}
				now := time.Now()
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				w.mu.Lock()
				for _, p := range w.mounts {
					k := [2]string{o.name, p.name}
					_, wasSeen := w.seen[k]
					switch {
					case slices.Contains(names, p.name) && !wasSeen:
						w.seen[k] = now
					case !slices.Contains(names, p.name) && wasSeen:
						if _, ok := w.gone[k]; !ok {
							w.gone[k] = now
						}
					}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *watcher) add(m *discordMount) {
	w.mu.Lock()
	w.mounts = append(w.mounts, m)
	w.mu.Unlock()
}

func (w *watcher) get(m map[[2]string]time.Time, observer, peer string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := m[[2]string{observer, peer}]
	return t, ok
}

// TestThreeMountsInDiscord: three `dsftp mount` processes, each sharing its
// own directory, find each other through the fake Discord, read each
// other's files, refuse a key from outside the channel, and a clean exit
// removes the leaver's directory everywhere.
func TestThreeMountsInDiscord(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.Require(t, "sftp")
	f := newFakeDiscord(t)
	shared := f.bot() // alice and bob share a token; carol has her own bot
	a := startDiscordMount(t, f, shared, "alice")
	w := watch(a)
	defer close(w.stop)
	b := startDiscordMount(t, f, shared, "bob")
	w.add(b)
	c := startDiscordMount(t, f, f.bot(), "carol")
	w.add(c)
	all := []*discordMount{a, b, c}

	// Everyone lists the other two (and not themselves).
	for _, o := range all {
		for _, p := range all {
			if o == p {
				continue
			}
			testenv.WaitFor(t, 15*time.Second, o.name+" to list "+p.name, func() bool {
				_, ok := w.get(w.seen, o.name, p.name)
				return ok
			})
		}
		if _, err := os.Stat(filepath.Join(o.mnt, o.name)); err == nil {
			t.Errorf("%s lists itself", o.name)
		}
	}
	// Latency from a peer's first advert (as the fake stored it) and from
	// its process start to its directory in mounts already running.
	for _, pair := range [][2]*discordMount{{a, b}, {a, c}, {b, c}} {
		seen, _ := w.get(w.seen, pair[0].name, pair[1].name)
		t.Logf("%s's directory appeared in %s's mount %v after its advert was posted, %v after its process started",
			pair[1].name, pair[0].name, seen.Sub(f.firstAdvert(pair[1].name)).Round(time.Millisecond),
			seen.Sub(pair[1].started).Round(time.Millisecond))
	}

	// Files read correctly across all pairs.
	for _, o := range all {
		for _, p := range all {
			if o == p {
				continue
			}
			got, err := os.ReadFile(filepath.Join(o.mnt, p.name, "whoami.bin"))
			if err != nil || !bytes.Equal(got, p.content) {
				t.Errorf("%s reading %s's file: %d bytes, %v", o.name, p.name, len(got), err)
			}
		}
	}

	// A key from outside the channel is refused by the share, even with
	// the right host key.
	adv, _ := f.advertOf("alice")
	if adv == nil {
		t.Fatal("no advert of alice's")
	}
	stranger := testenv.NewKey(t, t.TempDir(), "stranger")
	if out, err := sftpLs(t, a.port, adv.HostKey, stranger.Path); err == nil {
		t.Errorf("alice's share let in a key from outside the channel:\n%s", out)
	}

	// Carol leaves cleanly: her directory goes away everywhere.
	sent := time.Now()
	c.proc.Cmd.Process.Signal(syscall.SIGINT)
	for _, o := range []*discordMount{a, b} {
		testenv.WaitFor(t, 15*time.Second, "carol's directory to leave "+o.name+"'s mount", func() bool {
			_, ok := w.get(w.gone, o.name, "carol")
			return ok
		})
		gone, _ := w.get(w.gone, o.name, "carol")
		t.Logf("carol's directory left %s's mount %v after SIGINT", o.name, gone.Sub(sent).Round(time.Millisecond))
	}
	if err, ok := c.proc.Wait(15 * time.Second); !ok || err != nil {
		t.Errorf("carol's dsftp did not exit cleanly: %v (exited %v)", err, ok)
	}
	if testenv.Mounted(c.mnt) {
		t.Error("carol's mount is still there")
	}
	if d, _ := f.advertOf("carol"); d != nil {
		t.Error("carol's advert is still in the channel")
	}
	// The others still read each other.
	if got, err := os.ReadFile(filepath.Join(a.mnt, "bob", "whoami.bin")); err != nil || !bytes.Equal(got, b.content) {
		t.Errorf("alice reading bob after carol left: %v", err)
	}
}
