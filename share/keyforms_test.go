//go:build linux

package share

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
)

// checkForms reads every form through c: withheld ones are not listed
// and not found, served ones are listed and read whole.
func checkForms(t *testing.T, f *policytest.KeyForms, c *sftp.Client) {
	t.Helper()
	listed := listNames(t, c, "/")
	for _, kf := range f.Forms {
		// A listing checks the content of small files only; a bigger
		// one holding a key is listed, and not found when opened.
		fi, err := os.Stat(filepath.Join(f.Share, kf.Name))
		big := err == nil && fi.Size() > policytest.ScanWindow
		if got := slices.Contains(listed, kf.Name); got != (kf.Why == "" || big) {
			t.Errorf("%s listed: %v; want %v (%s)", kf.Name, got, kf.Why == "" || big, kf.Why)
		}
		got, err := readAllRemote(c, "/"+kf.Name)
		if kf.Why != "" {
			if !isNotExist(err) {
				t.Errorf("read /%s = %d bytes, %v; want not found (%s)", kf.Name, len(got), err, kf.Why)
			}
			continue
		}
		want, _ := readNoAtime(filepath.Join(f.Share, kf.Name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read /%s = %d bytes, %v; want its %d bytes", kf.Name, len(got), err, len(want))
		}
	}
}

// checkLog looks for the refusals, with their reasons, in a server log;
// logged gives the reasons (why) of the log entries that name a client
// path. The program's log limiter writes lines of at most 8 reasons of
// one message a minute in full (the rest are summed up at the minute's
// end), so that many reasons must be there, each with the right files,
// and no file with a wrong reason.
func checkLog(t *testing.T, f *policytest.KeyForms, logged func(path string) []string) {
	t.Helper()
	whys, found := map[string]bool{}, map[string]bool{}
	for _, kf := range f.Forms {
		got := logged("/" + kf.Name)
		if kf.Why == "" {
			if len(got) > 0 {
				t.Errorf("a refusal logged for /%s, which is served", kf.Name)
			}
			continue
		}
		whys[kf.Why] = true
		switch {
		case slices.Contains(got, kf.Why):
			found[kf.Why] = true
		case len(got) > 0:
			t.Errorf("/%s logged with another reason than %q: %q", kf.Name, kf.Why, got)
		}
	}
	if want := min(len(whys), 8); len(found) < want {
		t.Errorf("refusals logged with %d reasons, want at least %d of %d", len(found), want, len(whys))
	}
}

// textWhy finds the why of a text log line after its path.
var textWhy = regexp.MustCompile(`^why=("(?:[^"\\]|\\.)*"|\S+)`)

// textLogged is checkLog's logged for the text log of a test share.
func textLogged(logs string) func(string) []string {
	return func(p string) []string {
		var whys []string
		for line := range strings.Lines(logs) {
			_, rest, ok := strings.Cut(line, " path="+p+" ")
			if !ok {
				continue
			}
			why := ""
			if m := textWhy.FindStringSubmatch(rest); m != nil {
				why = m[1]
				if u, err := strconv.Unquote(why); err == nil {
					why = u
				}
			}
			whys = append(whys, why)
		}
		return whys
	}
}

// nodeLogged is checkLog's logged for the records of a dsftp node.
func nodeLogged(n *testenv.Node) func(string) []string {
	return func(p string) []string {
		var whys []string
		for _, r := range n.Where(func(r testenv.Record) bool { return r.Str("path") == p }) {
			whys = append(whys, r.Str("why"))
		}
		return whys
	}
}

// TestKeyFormsRefused: a real share.Server, with the secret directories
// of its defaults (HOME is the fixture's), refuses every form of key to
// pkg/sftp and to OpenSSH's sftp, serves the near misses, and logs why.
func TestKeyFormsRefused(t *testing.T) {
	f := policytest.NewKeyForms(t)
	f.UseHome(t)
	ts := startTestShare(t, f.Share, func(o *Options) { o.SecretFiles = []string{f.Token, f.HostKey} })
	checkForms(t, f, ts.sftpClient(t))
	checkLog(t, f, textLogged(ts.logs.String()))

	work := t.TempDir()
	var batch strings.Builder
	for _, kf := range f.Forms {
		batch.WriteString("-get /" + kf.Name + "\n")
	}
	out, err := ts.sftpBatch(t, work, batch.String())
	if err != nil {
		t.Fatalf("sftp -b: %v\n%s", err, out)
	}
	for _, kf := range f.Forms {
		got, err := os.ReadFile(filepath.Join(work, kf.Name))
		switch {
		case kf.Why != "" && err == nil:
			t.Errorf("OpenSSH sftp downloaded /%s (%d bytes); want refused (%s)", kf.Name, len(got), kf.Why)
		case kf.Why == "" && err != nil:
			t.Errorf("OpenSSH sftp did not download /%s: %v\n%s", kf.Name, err, out)
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
	f := policytest.NewKeyForms(t)
	b := startBinaryShareEnv(t, []string{"HOME=" + f.Home, "XDG_CONFIG_HOME=" + filepath.Join(f.Home, ".config")}, f.Share, nil)
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
	checkForms(t, f, sc)
	checkLog(t, f, nodeLogged(b.proc))
}
