//go:build linux

package policytest

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// Secrets is a share that holds what a home folder holds: keys,
// tokens, dotfiles, an ignore file, and a dsftp mountpoint.
type Secrets struct {
	Share string
	Token string // a dsftp secret file with harmless-looking content
	Mount string // absolute path of the "dsftp mount" inside the share
	// Served are the regular files a client must read, by client path.
	Served []string
	// Absent are paths a client must not see at all (ENOENT).
	Absent []string
	// Withheld are the absent paths that their names do not give away:
	// private keys, dsftp secrets, links into hidden places.
	Withheld []string
}

// NewSecrets builds it. Serve it with Token among the secret files and
// Mount among the excluded mounts, as dsftp mount would.
func NewSecrets(t testing.TB) *Secrets {
	t.Helper()
	base := t.TempDir()
	f := &Secrets{Share: filepath.Join(base, "home")}
	write := func(rel, content string) {
		p := filepath.Join(f.Share, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(f.Share, rel)); err != nil {
			t.Fatal(err)
		}
	}
	k := testenv.NewKey(t, t.TempDir(), "id_ed25519")
	pemKey, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	opensshKey := string(pemKey)
	pkcs8 := make([]byte, 48) // the detection reads the PEM lines, not the DER
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: make([]byte, 900)}))
	bundle := cert + cert + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))

	write(".ssh/id_ed25519", opensshKey)
	write(".ssh/id_ed25519.pub", "ssh-ed25519 AAAA… me@home\n")
	write(".env", "API_TOKEN=hunter2\n")
	write(".config/dsftp/discord-token", "Bot abc.def.ghi\n")
	write(".dsftpignore", "# build output and logs\nbuild/\n*.log\n!keep.log\n/private\n")
	write("notes/todo.txt", "buy milk\n")
	write("notes/ssh-howto.md", "Keep your PRIVATE KEY safe; never paste a line like -----BEGIN in chat.\n")
	write("notes/backup.txt", "my old key, just in case:\n\n"+opensshKey)
	write("certs/server.crt", cert)
	write("certs/bundle.pem", bundle)
	write("putty.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n")
	write("photos/cat.jpg", strings.Repeat("meow", 5000))
	write("build/out.bin", "compiled\n")
	write("app.log", "log line\n")
	write("keep.log", "kept\n")
	write("private/diary.txt", "dear diary\n")
	write("sub/private", "only /private is ignored, not this\n")
	write("token.txt", "looks harmless\n")
	write("peers/bob/x.txt", "through the mount\n")
	link(".ssh/id_ed25519", "k")
	link(".ssh", "dots")
	link(filepath.Join(f.Share, ".ssh", "id_ed25519"), "abs-k")
	link("notes/todo.txt", "todo-link")
	f.Token = filepath.Join(f.Share, "token.txt")
	f.Mount = filepath.Join(f.Share, "peers")
	f.Served = []string{"/certs/server.crt", "/keep.log", "/notes/ssh-howto.md", "/notes/todo.txt", "/photos/cat.jpg", "/sub/private", "/todo-link"}
	f.Absent = []string{
		"/.ssh", "/.ssh/id_ed25519", "/.ssh/id_ed25519.pub", "/.env", "/.config", "/.config/dsftp/discord-token",
		"/.dsftpignore", "/build", "/build/out.bin", "/app.log", "/private", "/private/diary.txt",
		"/peers", "/peers/bob", "/peers/bob/x.txt", "/notes/../.env", "/dots/../.env",
	}
	f.Withheld = []string{"/notes/backup.txt", "/certs/bundle.pem", "/putty.ppk", "/token.txt", "/k", "/dots", "/dots/id_ed25519", "/abs-k"}
	f.Absent = append(f.Absent, f.Withheld...)
	return f
}
