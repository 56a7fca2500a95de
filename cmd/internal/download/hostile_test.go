package download_test

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// hostile is an SFTP server (pkg/sftp's request server, speaking the real
// protocol) whose directory listing of /evil holds names that try to leave
// the download directory. A real OpenSSH server cannot send such names, a
// malicious peer can.
type hostile struct{}

type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (f fileInfo) Name() string { return f.name }
func (f fileInfo) Size() int64  { return f.size }
func (f fileInfo) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (f fileInfo) ModTime() time.Time { return time.Unix(1700000000, 0) }
func (f fileInfo) IsDir() bool        { return f.dir }
func (f fileInfo) Sys() any           { return nil }

type lister []os.FileInfo

func (l lister) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}

const payload = "pwned"

func (hostile) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		var l lister
		for _, n := range []string{"../escape", "/etc/escape", "a/b", "..", ".", "ok.txt", `back\slash`} {
			l = append(l, fileInfo{name: n, size: int64(len(payload))})
		}
		return l, nil
	default: // Stat, Lstat
		if r.Filepath == "/evil" {
			return lister{fileInfo{name: "evil", dir: true}}, nil
		}
		return lister{fileInfo{name: filepath.Base(r.Filepath), size: int64(len(payload))}}, nil
	}
}

func (hostile) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	return strings.NewReader(payload), nil
}
func (hostile) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return nil, sftp.ErrSSHFxPermissionDenied
}
func (hostile) Filecmd(r *sftp.Request) error { return sftp.ErrSSHFxPermissionDenied }

type pipe struct {
	io.Reader
	io.WriteCloser
}

func TestHostileNamesStayInside(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	h := hostile{}
	srv := sftp.NewRequestServer(pipe{c2sR, s2cW}, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
	go srv.Serve()
	client, err := sftp.NewClientPipe(s2cR, c2sW)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the pipes ends both sides; sftp.Client.Close alone would
	// wait for a reader that never sees EOF.
	t.Cleanup(func() { c2sW.Close(); s2cW.Close(); c2sR.Close(); s2cR.Close(); client.Close() })

	outer := t.TempDir()
	dest := filepath.Join(outer, "dest")
	os.Mkdir(dest, 0o755)
	var notes bytes.Buffer
	res, err := download.Get(t.Context(), &sftpSource{Client: client, Root: "/"}, "/evil", dest+"/",
		download.Options{Recursive: true, Progress: &download.Lines{W: &notes}})
	if err != nil {
		t.Fatalf("get -r from the hostile server: %v", err)
	}
	// pkg/sftp's client already reduces listed names to their base name
	// ("../escape" and "/etc/escape" arrive as "escape", "a/b" as "b");
	// the engine refuses what is still unsafe for a local name.
	if !strings.Contains(notes.String(), `unsafe file name "back\\slash"`) {
		t.Errorf("no note about the backslash name:\n%s", notes.String())
	}
	var found []string
	filepath.WalkDir(outer, func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != len(res.Files)-1 || len(found) < 2 { // two "escape" entries share one file
		t.Fatalf("files written %q for results %+v", found, res.Files)
	}
	for _, p := range found {
		if !strings.HasPrefix(p, filepath.Join(dest, "evil")+"/") || strings.Count(p[len(dest):], "/") != 2 {
			t.Fatalf("%s written outside %s/evil", p, dest)
		}
	}
	if _, err := os.Stat("/etc/escape"); err == nil {
		t.Fatalf("/etc/escape exists")
	}
}

func TestSafeName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "../x", "/etc/x", "a/b", `a\b`, "nul\x00"} {
		if download.SafeName(bad) == nil {
			t.Errorf("SafeName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"x", "my file.txt", `it's "q"`, "..x", "x..", "ünï"} {
		if err := download.SafeName(good); err != nil {
			t.Errorf("SafeName(%q): %v", good, err)
		}
	}
}
