//go:build linux

package discord

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/bwmarrin/discordgo"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers/advert"
)

// craft signs an advert for e's channel with key; mod may change it.
func (e *env) craft(t *testing.T, key ssh.Signer, name string, mod ...func(*advert.Advert)) string {
	t.Helper()
	now := time.Now()
	a := advert.Advert{
		Name: name, Addrs: []string{"192.0.2.9:22"}, Guild: e.guild, Channel: e.channel,
		Instance: advert.NewInstance(), Seq: 1, Issued: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
		ClientKeys: []string{advert.MarshalKey(newSigner(t).PublicKey())},
	}
	for _, m := range mod {
		m(&a)
	}
	text, err := advert.Encode(a, key)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func (e *env) post(t *testing.T, token, content string) string {
	t.Helper()
	id, err := e.fake.Post(token, e.channel, content)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestHostileAdverts(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	evil, _ := e.bot(t)
	aliceLogs := &syncBuffer{}
	a := e.start(t, tokA, "alice", func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, aliceLogs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	b := e.start(t, tokB, "bob")
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	var bobAdvert string
	for _, m := range e.fake.Messages(e.channel) {
		if m.AuthorID == idB {
			bobAdvert = m.Content
		}
	}

	mallory := newSigner(t)
	otherChannel := e.fake.AddChannel(e.guild, "elsewhere")
	rejected := []string{
		"hello, is dsftp working?",
		"dsftp/1 garbage",
		"dsftp/1 " + strings.Repeat("A", 1990),
		"dsftp/2 from-the-future.sig",
		// Signed by mallory but claiming bob's host key.
		func() string {
			text := e.craft(t, mallory, "bob", func(a *advert.Advert) { a.Addrs = []string{"203.0.113.66:22"} })
			d, _ := advert.Decode(text)
			return strings.Replace(text, text[len(advert.Prefix):strings.IndexByte(text, '.')],
				reencode(t, d.Advert, advert.MarshalKey(b.host.PublicKey())), 1)
		}(),
		// Made for another channel, replayed here.
		e.craft(t, newSigner(t), "carol", func(a *advert.Advert) { a.Channel = otherChannel }),
		e.craft(t, newSigner(t), "carol", func(a *advert.Advert) { a.Guild = "1" }),
		// Expired, and with an overlong lifetime.
		e.craft(t, newSigner(t), "dave", func(a *advert.Advert) {
			a.Issued, a.Expires = time.Now().Add(-50*time.Minute).Unix(), time.Now().Add(-10*time.Minute).Unix()
		}),
		e.craft(t, newSigner(t), "dave", func(a *advert.Advert) { a.Expires = time.Now().Add(48 * time.Hour).Unix() }),
		// Bob's genuine advert, replayed by someone else.
		bobAdvert,
	}
	var rejectedIDs []string // of those that claim to be adverts
	for _, c := range rejected {
		id := e.post(t, evil, c)
		if strings.HasPrefix(c, "dsftp/") {
			rejectedIDs = append(rejectedIDs, id)
		}
	}
	// Valid adverts with hostile names: accepted, but made safe.
	hostile := []string{"bob", "../../etc", "a/b", ".", "..", "x\x00y", "\u202etxt.exe", strings.Repeat("n", 300), ""}
	for _, name := range hostile {
		e.post(t, evil, e.craft(t, newSigner(t), name))
	}
	waitFor(t, 10*time.Second, "the hostile-named adverts", func() bool { return len(a.reg.List()) == 1+len(hostile) })
	// The rejected ones were posted first, but events are handled
	// concurrently: wait until alice has turned down every one of them.
	waitFor(t, 10*time.Second, "alice to ignore every rejected advert", func() bool {
		ignored := map[string]bool{}
		for line := range strings.Lines(aliceLogs.String()) {
			if _, rest, ok := strings.Cut(line, `msg="discord: ignored advert"`); ok {
				if _, id, ok := strings.Cut(rest, " message="); ok {
					ignored[strings.Fields(id)[0]] = true
				}
			}
		}
		for _, id := range rejectedIDs {
			if !ignored[id] {
				return false
			}
		}
		return true
	})

	list := a.reg.List()
	if len(list) != 1+len(hostile) {
		t.Fatalf("alice lists %d peers, want %d: %v", len(list), 1+len(hostile), names(a.reg))
	}
	seen := map[string]bool{}
	for _, p := range list {
		n := p.DisplayName
		if seen[n] {
			t.Errorf("duplicate display name %q", n)
		}
		seen[n] = true
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00\\") || len(n) > 64 {
			t.Errorf("unsafe display name %q", n)
		}
		for _, r := range n {
			if !unicode.IsPrint(r) && r != ' ' {
				t.Errorf("unprintable character %U in %q", r, n)
			}
		}
		for _, addr := range p.Addrs {
			if addr == "203.0.113.66:22" {
				t.Errorf("forged address reached peer %q", n)
			}
		}
	}
	bob, ok := a.reg.Get("bob")
	if !ok || bob.ID != b.fp || bob.AuthorID != idB {
		t.Errorf("the name bob now belongs to %+v; want bob's own advert", bob)
	}
	if !strings.Contains(e.logs.String(), "ignored advert") {
		t.Error("rejections were not logged")
	}
	// Adverts longer than Discord allows are refused before parsing.
	a.d.recv.message(&discordgo.Message{ID: "1", ChannelID: e.channel, Content: "dsftp/1 " + strings.Repeat("B", 5000)}, time.Now())
	if len(a.reg.List()) != 1+len(hostile) {
		t.Error("an oversized advert changed the registry")
	}
}

// reencode returns the base64 payload of a with its host key replaced.
func reencode(t *testing.T, a advert.Advert, hostKey string) string {
	t.Helper()
	text, err := advert.Encode(a, newSigner(t)) // any signer; we keep only the payload
	if err != nil {
		t.Fatal(err)
	}
	d, _ := advert.Decode(text)
	body := text[len(advert.Prefix):strings.IndexByte(text, '.')]
	payload, _ := decodeB64(body)
	out := strings.Replace(string(payload), d.Advert.HostKey, hostKey, 1)
	return encodeB64([]byte(out))
}

func TestAllowUser(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	tokC, _ := e.bot(t)
	a := e.start(t, tokA, "alice", func(c *Config) { c.AllowUsers = []string{idB} })
	b := e.start(t, tokB, "bob")
	c := e.start(t, tokC, "carol")
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	waitFor(t, 10*time.Second, "bob to see carol", func() bool { return b.has(c.fp) })
	if a.has(c.fp) {
		t.Error("alice trusts carol, whose bot is not in --allow-user")
	}
}
