//go:build linux

package policytest

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
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// ScanWindow is the policy's key-scan window (keyScanBytes there): a key
// that starts just before its end must still be found.
const ScanWindow = 64 << 10

// KeyForm is a file in the key-forms share: withheld (why names the
// reason logged) or, with why "", served.
type KeyForm struct {
	Name string // the file's name in the share
	Why  string
}

// KeyForms is a share next to a fake home: ~/.ssh, ~/.gnupg and
// ~/.config/dsftp with a Discord token and a host key in it.
type KeyForms struct {
	Home, Share string
	Token       string // the Discord token file
	HostKey     string
	Forms       []KeyForm
}

// NewKeyForms writes every form of key the share must refuse, and files
// that look like them but must be served. It uses openssl for PKCS#12
// and encrypted DER PKCS#8, which Go's standard library cannot write.
func NewKeyForms(t testing.TB) *KeyForms {
	t.Helper()
	openssl := testenv.Require(t, "openssl")[0]
	base := t.TempDir()
	f := &KeyForms{Home: filepath.Join(base, "home"), Share: filepath.Join(base, "share")}
	cfg := filepath.Join(f.Home, ".config", "dsftp")
	for _, d := range []string{filepath.Join(f.Home, ".ssh"), filepath.Join(f.Home, ".gnupg", "private-keys-v1.d"), cfg, f.Share} {
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
		write(filepath.Join(f.Share, name), b)
		f.Forms = append(f.Forms, KeyForm{name, why})
	}
	hardlink := func(target, name, why string) {
		t.Helper()
		if err := os.Link(target, filepath.Join(f.Share, name)); err != nil {
			t.Fatal(err)
		}
		f.Forms = append(f.Forms, KeyForm{name, why})
	}

	// The fake home's secrets.
	sshKey := testenv.NewKey(t, filepath.Join(f.Home, ".ssh"), "id_ed25519")
	write(filepath.Join(f.Home, ".ssh", "known_hosts"), []byte("example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"))
	write(filepath.Join(f.Home, ".ssh", "config"), []byte("Host work\n  HostName 10.0.0.7\n  User me\n"))
	write(filepath.Join(f.Home, ".gnupg", "pubring.kbx"), []byte("not really a keyring, but a file in ~/.gnupg\n"))
	f.Token = filepath.Join(cfg, "discord-token")
	token := "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GAbCdE.hunter2hunter2hunter2hunter2hunter2xyz"
	write(f.Token, []byte(token+"\n"))
	f.HostKey = testenv.NewKey(t, cfg, "host_key").Path

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
	add("window-end.txt", "private key (PEM)", cat(text(ScanWindow-5), pkcs8PEM, text(300<<10)))
	// Beyond the whole-scan bound, the last window is searched too.
	add("appended-2m.log", "private key (PEM)", append(text(2<<20), pemKey...))
	add("ed25519.pk8.der", "private key (DER PKCS#8)", edPKCS8)
	add("rsa.pk8.der", "private key (DER PKCS#8)", rsaPKCS8)
	add("rsa.pk1.der", "private key (DER PKCS#1)", rsaPKCS1)
	add("ec.sec1.der", "private key (DER SEC1 EC)", ecSEC1)
	add("ec.pk8.der", "private key (DER PKCS#8)", ecPKCS8)
	add("id.b64", "base64 of a private key (PEM)", []byte(Lines(base64.StdEncoding.EncodeToString(pemKey), 76)))
	add("id-one-line.b64", "base64 of a private key (PEM)", []byte(base64.StdEncoding.EncodeToString(pkcs8PEM)))
	add("pem-body.txt", "base64 of a private key (DER PKCS#1)", []byte(Lines(base64.StdEncoding.EncodeToString(rsaPKCS1), 64)+"\n"))
	add("id.gz", "gzip of a private key (PEM)", Gzipped(t, pemKey))
	add("ssh.tar.gz", "gzip of a private key (PEM)", Gzipped(t, tarOf(t, map[string][]byte{"config": []byte("Host *\n"), "id_ed25519": pemKey})))
	add("der.gz.b64", "base64 of a gzip of a private key (DER PKCS#8)", []byte(base64.StdEncoding.EncodeToString(Gzipped(t, edPKCS8))))
	add("token-copy", "copy of a dsftp secret", []byte(token))
	add("token-copy-crlf.txt", "copy of a dsftp secret", []byte("\r\n"+token+"\r\n"))
	hardlink(filepath.Join(f.Home, ".ssh", "known_hosts"), "hosts.txt", "same file as one in "+filepath.Join(f.Home, ".ssh"))
	hardlink(filepath.Join(f.Home, ".ssh", "config"), "ssh-config.txt", "same file as one in "+filepath.Join(f.Home, ".ssh"))
	hardlink(filepath.Join(f.Home, ".gnupg", "pubring.kbx"), "ring.kbx", "same file as one in "+filepath.Join(f.Home, ".gnupg"))
	hardlink(f.Token, "harmless.txt", "dsftp secret")
	hardlink(f.HostKey, "host.txt", "dsftp secret")

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
	run("pkcs12", "-export", "-inkey", keyPEM, "-in", certPEM, "-passout", "pass:secret", "-out", filepath.Join(f.Share, "bundle.p12"))
	f.Forms = append(f.Forms, KeyForm{"bundle.p12", "PKCS#12 key bundle"})
	run("pkcs8", "-topk8", "-in", keyPEM, "-v2", "aes-256-cbc", "-passout", "pass:secret", "-outform", "DER", "-out", filepath.Join(f.Share, "enc.pk8.der"))
	f.Forms = append(f.Forms, KeyForm{"enc.pk8.der", "encrypted private key (DER PKCS#8)"})

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
	add("random.b64", "", []byte(Lines(base64.StdEncoding.EncodeToString(random), 76)))
	add("notes.gz", "", Gzipped(t, text(200<<10)))
	add("notes.txt", "", text(300<<10))
	add("token-like.txt", "", []byte(token[:len(token)-1]+"\n"))
	add("empty", "", nil)
	return f
}

// Lines breaks s into lines of n characters.
func Lines(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func Gzipped(t testing.TB, b []byte) []byte {
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

// SecretDirs are the fake home's secret directories, as the policy's
// defaults find them with HOME set to it.
func (f *KeyForms) SecretDirs() []string {
	return []string{filepath.Join(f.Home, ".ssh"), filepath.Join(f.Home, ".gnupg"), filepath.Join(f.Home, ".config", "dsftp")}
}

// UseHome points this test's HOME and configuration directory at the
// fixture's fake home, which the share's defaults then protect.
func (f *KeyForms) UseHome(t *testing.T) {
	t.Setenv("HOME", f.Home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(f.Home, ".config"))
}
