//go:build linux

package share

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
)

// keyForm is a file in the key-forms share: withheld (why names the
// reason logged) or, with why "", served.
type keyForm struct {
	name string // the file's name in the share
	why  string
}

// keyFormsFixture is a share next to a fake home: ~/.ssh, ~/.gnupg and
// ~/.config/dsftp with a Discord token and a host key in it.
type keyFormsFixture struct {
	home, share string
	token       string // the Discord token file
	hostKey     string
	forms       []keyForm
}

// newKeyForms writes every form of key the share must refuse, and files
// that look like them but must be served. It uses openssl for PKCS#12
// and encrypted DER PKCS#8, which Go's standard library cannot write.
func newKeyForms(t testing.TB) *keyFormsFixture {
	t.Helper()
	openssl := testenv.Require(t, "openssl")[0]
	base := t.TempDir()
	f := &keyFormsFixture{home: filepath.Join(base, "home"), share: filepath.Join(base, "share")}
	cfg := filepath.Join(f.home, ".config", "dsftp")
	for _, d := range []string{filepath.Join(f.home, ".ssh"), filepath.Join(f.home, ".gnupg", "private-keys-v1.d"), cfg, f.share} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	add := func(name, why string, b []byte) {
		t.Helper()
		write(filepath.Join(f.share, name), b)
		f.forms = append(f.forms, keyForm{name, why})
	}
	hardlink := func(target, name, why string) {
		t.Helper()
		if err := os.Link(target, filepath.Join(f.share, name)); err != nil {
			t.Fatal(err)
		}
		f.forms = append(f.forms, keyForm{name, why})
	}

	// The fake home's secrets.
	sshKey := testenv.NewKey(t, filepath.Join(f.home, ".ssh"), "id_ed25519")
	write(filepath.Join(f.home, ".ssh", "known_hosts"), []byte("example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"))
	write(filepath.Join(f.home, ".ssh", "config"), []byte("Host work\n  HostName 10.0.0.7\n  User me\n"))
	write(filepath.Join(f.home, ".gnupg", "pubring.kbx"), []byte("not really a keyring, but a file in ~/.gnupg\n"))
	f.token = filepath.Join(cfg, "discord-token")
	token := "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GAbCdE.hunter2hunter2hunter2hunter2hunter2xyz"
	write(f.token, []byte(token+"\n"))
	f.hostKey = testenv.NewKey(t, cfg, "host_key").Path

	// Keys, in every form.
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPKCS8, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPKCS8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS1 := x509.MarshalPKCS1PrivateKey(rsaKey)
	pemKey, err := os.ReadFile(sshKey.Path)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8PEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edPKCS8})

	text := func(n int) []byte {
		line := "Ordinary notes: nothing secret here, just words and -- dashes.\n"
		return []byte(strings.Repeat(line, n/len(line)+1)[:n])
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	add("past-64k.txt", "private key (PEM)", cat(text(100<<10), pemKey, text(100<<10)))
	// The BEGIN line starts inside the first window and ends past it; the
	// file is too big to be searched all through.
	add("edge-65520.txt", "private key (PEM)", cat(text(65520), pkcs8PEM, text(300<<10)))
	add("window-end.txt", "private key (PEM)", cat(text(keyScanBytes-5), pkcs8PEM, text(300<<10)))
	// Beyond the whole-scan bound, the last window is searched too.
	add("appended-2m.log", "private key (PEM)", append(text(2<<20), pemKey...))
	add("ed25519.pk8.der", "private key (DER PKCS#8)", edPKCS8)
	add("rsa.pk8.der", "private key (DER PKCS#8)", rsaPKCS8)
	add("rsa.pk1.der", "private key (DER PKCS#1)", rsaPKCS1)
	add("ec.sec1.der", "private key (DER SEC1 EC)", ecSEC1)
	add("ec.pk8.der", "private key (DER PKCS#8)", ecPKCS8)
	add("id.b64", "base64 of a private key (PEM)", []byte(lines(base64.StdEncoding.EncodeToString(pemKey), 76)))
	add("id-one-line.b64", "base64 of a private key (PEM)", []byte(base64.StdEncoding.EncodeToString(pkcs8PEM)))
	add("pem-body.txt", "base64 of a private key (DER PKCS#1)", []byte(lines(base64.StdEncoding.EncodeToString(rsaPKCS1), 64)+"\n"))
	add("id.gz", "gzip of a private key (PEM)", gzipped(t, pemKey))
	add("ssh.tar.gz", "gzip of a private key (PEM)", gzipped(t, tarOf(t, map[string][]byte{"config": []byte("Host *\n"), "id_ed25519": pemKey})))
	add("der.gz.b64", "base64 of a gzip of a private key (DER PKCS#8)", []byte(base64.StdEncoding.EncodeToString(gzipped(t, edPKCS8))))
	add("token-copy", "copy of a dsftp secret", []byte(token))
	add("token-copy-crlf.txt", "copy of a dsftp secret", []byte("\r\n"+token+"\r\n"))
	hardlink(filepath.Join(f.home, ".ssh", "known_hosts"), "hosts.txt", "same file as one in "+filepath.Join(f.home, ".ssh"))
	hardlink(filepath.Join(f.home, ".ssh", "config"), "ssh-config.txt", "same file as one in "+filepath.Join(f.home, ".ssh"))
	hardlink(filepath.Join(f.home, ".gnupg", "pubring.kbx"), "ring.kbx", "same file as one in "+filepath.Join(f.home, ".gnupg"))
	hardlink(f.token, "harmless.txt", "dsftp secret")
	hardlink(f.hostKey, "host.txt", "dsftp secret")

	// openssl's forms: PKCS#12 and an encrypted DER PKCS#8 key.
	keyPEM := filepath.Join(base, "rsa.pem")
	write(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaPKCS8}))
	certPEM := filepath.Join(base, "cert.pem")
	certDER := selfSigned(t, rsaKey)
	write(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("pkcs12", "-export", "-inkey", keyPEM, "-in", certPEM, "-passout", "pass:secret", "-out", filepath.Join(f.share, "bundle.p12"))
	f.forms = append(f.forms, keyForm{"bundle.p12", "PKCS#12 key bundle"})
	run("pkcs8", "-topk8", "-in", keyPEM, "-v2", "aes-256-cbc", "-passout", "pass:secret", "-outform", "DER", "-out", filepath.Join(f.share, "enc.pk8.der"))
	f.forms = append(f.forms, keyForm{"enc.pk8.der", "encrypted private key (DER PKCS#8)"})

	// Near misses: served.
	add("howto.md", "", []byte("Never paste a line like -----BEGIN PRIVATE KEY in chat; keep your PRIVATE KEY safe.\n-----BEGIN a private key PRIVATE KEY-----\n"))
	add("cert.pem", "", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))
	add("cert.der", "", certDER)
	pubDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	add("pub.der", "", pubDER)
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	random[0] = 0x30
	add("random-0x30.bin", "", random)
	// A DER SEQUENCE that spans the file but is no key.
	seq := append([]byte{0x30, 0x82, 0x0f, 0xfc}, random[:0xffc]...)
	add("seq-0x30.bin", "", seq)
	add("random.b64", "", []byte(lines(base64.StdEncoding.EncodeToString(random), 76)))
	add("notes.gz", "", gzipped(t, text(200<<10)))
	add("notes.txt", "", text(300<<10))
	add("token-like.txt", "", []byte(token[:len(token)-1]+"\n"))
	add("empty", "", nil)
	return f
}

// lines breaks s into lines of n characters.
func lines(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarOf is a tar archive of the files, in name order.
func tarOf(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"config", "id_ed25519"} {
		if err := tw.WriteHeader(&tar.Header{Name: ".ssh/" + name, Mode: 0o600, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// selfSigned is a DER certificate for key.
func selfSigned(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dsftp test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// secretDirs are the fake home's secret directories, as
// defaultSecretDirs finds them with HOME set to it.
func (f *keyFormsFixture) secretDirs() []string {
	return []string{filepath.Join(f.home, ".ssh"), filepath.Join(f.home, ".gnupg"), filepath.Join(f.home, ".config", "dsftp")}
}

// TestKeyForms checks the secret check on every form of key: each
// refused one with its reason logged, each near miss served.
func TestKeyForms(t *testing.T) {
	f := newKeyForms(t)
	var logs bytes.Buffer
	g := newSecretGuard([]string{f.token, f.hostKey}, f.secretDirs(), &refusalLog{log: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, kf := range f.forms {
		t.Run(kf.name, func(t *testing.T) {
			logs.Reset()
			file, err := os.Open(filepath.Join(f.share, kf.name))
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			fi, err := file.Stat()
			if err != nil {
				t.Fatal(err)
			}
			err = g.check(file, fi, kf.name)
			switch {
			case kf.why == "" && err != nil:
				t.Errorf("check = %v; want served\n%s", err, logs.String())
			case kf.why != "" && !errors.Is(err, errSecret):
				t.Errorf("check = %v; want refused (%s)", err, kf.why)
			case kf.why != "" && !strings.Contains(logs.String(), "why="+strconv.Quote(kf.why)):
				t.Errorf("log %q; want why=%q", logs.String(), kf.why)
			}
		})
	}
}

// checkForms reads every form through c: withheld ones are not listed
// and not found, served ones are listed and read whole.
func (f *keyFormsFixture) checkForms(t *testing.T, c *sftp.Client) {
	t.Helper()
	listed := listNames(t, c, "/")
	for _, kf := range f.forms {
		// A listing checks the content of small files only; a bigger
		// one holding a key is listed, and not found when opened.
		fi, err := os.Stat(filepath.Join(f.share, kf.name))
		big := err == nil && fi.Size() > listScanMax
		if got := slices.Contains(listed, kf.name); got != (kf.why == "" || big) {
			t.Errorf("%s listed: %v; want %v (%s)", kf.name, got, kf.why == "" || big, kf.why)
		}
		got, err := readAllRemote(c, "/"+kf.name)
		if kf.why != "" {
			if !isNotExist(err) {
				t.Errorf("read /%s = %d bytes, %v; want not found (%s)", kf.name, len(got), err, kf.why)
			}
			continue
		}
		want, _ := readNoAtime(filepath.Join(f.share, kf.name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read /%s = %d bytes, %v; want its %d bytes", kf.name, len(got), err, len(want))
		}
	}
}

// checkLog looks for each refusal, with its reason, in a server log.
func (f *keyFormsFixture) checkLog(t *testing.T, logs string) {
	t.Helper()
	for _, kf := range f.forms {
		line := "path=/" + kf.name + " why=" + strconv.Quote(kf.why)
		if kf.why != "" && !strings.Contains(logs, line) {
			t.Errorf("no refusal logged for /%s (%s)", kf.name, line)
		}
	}
}

// useHome points this test's HOME and configuration directory at the
// fixture's fake home, which the share's defaults then protect.
func (f *keyFormsFixture) useHome(t *testing.T) {
	t.Setenv("HOME", f.home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(f.home, ".config"))
}

// TestKeyFormsRefused: a real share.Server, with the secret directories
// of its defaults (HOME is the fixture's), refuses every form of key to
// pkg/sftp and to OpenSSH's sftp, serves the near misses, and logs why.
func TestKeyFormsRefused(t *testing.T) {
	f := newKeyForms(t)
	f.useHome(t)
	ts := startTestShare(t, f.share, func(o *Options) { o.SecretFiles = []string{f.token, f.hostKey} })
	f.checkForms(t, ts.sftpClient(t))
	f.checkLog(t, ts.logs.String())

	work := t.TempDir()
	var batch strings.Builder
	for _, kf := range f.forms {
		batch.WriteString("-get /" + kf.name + "\n")
	}
	out, err := ts.sftpBatch(t, work, batch.String())
	if err != nil {
		t.Fatalf("sftp -b: %v\n%s", err, out)
	}
	for _, kf := range f.forms {
		got, err := os.ReadFile(filepath.Join(work, kf.name))
		switch {
		case kf.why != "" && err == nil:
			t.Errorf("OpenSSH sftp downloaded /%s (%d bytes); want refused (%s)", kf.name, len(got), kf.why)
		case kf.why == "" && err != nil:
			t.Errorf("OpenSSH sftp did not download /%s: %v\n%s", kf.name, err, out)
		}
	}
	if !strings.Contains(out, "not found") {
		t.Errorf("OpenSSH sftp did not report the withheld files as not found:\n%s", out)
	}
}

// TestKeyFormsBinary: the real `dsftp share`, with HOME and the
// configuration directory in the fixture's fake home, refuses every form:
// its defaults name the token file and the host key, and ~/.ssh, ~/.gnupg
// and ~/.config/dsftp.
func TestKeyFormsBinary(t *testing.T) {
	f := newKeyForms(t)
	b := startBinaryShareEnv(t, []string{"HOME=" + f.home, "XDG_CONFIG_HOME=" + filepath.Join(f.home, ".config")}, f.share, nil)
	c, err := b.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	f.checkForms(t, sc)
	f.checkLog(t, b.proc.Output.String())
}

// TestSecretDirsRefresh: a file that appears in a secret directory after
// the share started is refused through a hard link within seconds, and
// so is a copy of a token file written since.
func TestSecretDirsRefresh(t *testing.T) {
	base := t.TempDir()
	sshDir, share := filepath.Join(base, ".ssh"), filepath.Join(base, "share")
	for _, d := range []string{sshDir, share} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	token := filepath.Join(base, "discord-token")
	var logs testenv.SyncBuffer
	g := newSecretGuard([]string{token}, []string{sshDir}, &refusalLog{log: slog.New(slog.NewTextHandler(&logs, nil))})
	check := func(name string) error {
		f, err := os.Open(filepath.Join(share, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return g.check(f, fi, name)
	}
	hosts := filepath.Join(sshDir, "known_hosts")
	if err := os.WriteFile(hosts, []byte("example.org ssh-ed25519 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(hosts, filepath.Join(share, "hosts")); err != nil {
		t.Fatal(err)
	}
	const tok = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GAbCdE.a-new-token-written-after-the-start"
	if err := os.WriteFile(token, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "copy"), []byte(tok), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hard link to be refused", func() bool { return errors.Is(check("hosts"), errSecret) })
	waitFor(t, "the token's copy to be refused", func() bool { return errors.Is(check("copy"), errSecret) })
	if l := logs.String(); !strings.Contains(l, "same file as one in "+sshDir) || !strings.Contains(l, "copy of a dsftp secret") {
		t.Errorf("refusals not logged with their reasons:\n%s", l)
	}
}
