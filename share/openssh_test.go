//go:build linux

package share

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSSHBatchRead drives the real OpenSSH sftp client: ls, get,
// recursive get, symlinks inside the share (those that leave it are not
// listed), 255 KiB reads; the downloads match the files and nothing on
// disk changes (not even atimes).
func TestOpenSSHBatchRead(t *testing.T) {
	f := newFixture(t, true)
	ts := startTestShare(t, f.share, nil)
	before := treeHash(t, f.share)
	beforeAtimes := atimes(t, f.share)
	work := t.TempDir()

	out, err := ts.sftpBatch(t, work, strings.Join([]string{
		"pwd",
		"ls -l",
		"ls -l /sub",
		"get a.txt",
		"get link link.txt",
		"get sub/uplink uplink.txt",
		"get abslink abslink.txt",
		"get dirlink/b.txt dirlink-b.txt",
		"get -R sub subcopy",
		"get /sub/deeper/random.bin big255k.bin",
		"get \"name with spaces.txt\"",
		"cd sub",
		"get ../a.txt via-parent.txt",
		"",
	}, "\n"), "-B", "261120")
	if err != nil {
		t.Fatalf("sftp -b failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Remote working directory: /\n") {
		t.Errorf("pwd should be / (realpath of . is /):\n%s", out)
	}
	for _, name := range []string{"a.txt", "link", "sub", "dirlink", "emptydir", "name with spaces.txt"} {
		if !strings.Contains(out, " "+name+"\n") {
			t.Errorf("ls -l lacks %q:\n%s", name, out)
		}
	}
	for _, name := range []string{"out", "absout", "outdir", "chain1", "rootlink", "passwd"} {
		if strings.Contains(out, " "+name+"\n") {
			t.Errorf("ls -l shows %q, a link leaving the share:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "lrwxrwxrwx") {
		t.Errorf("ls -l should show symlinks as symlinks:\n%s", out)
	}
	same := func(local, remote string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(work, local))
		if err != nil {
			t.Errorf("download %s: %v", local, err)
			return
		}
		want, err := readNoAtime(filepath.Join(f.share, remote))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from share/%s (%d vs %d bytes)", local, remote, len(got), len(want))
		}
	}
	same("a.txt", "a.txt")
	same("link.txt", "a.txt")
	same("uplink.txt", "a.txt")
	same("abslink.txt", "sub/b.txt")
	same("dirlink-b.txt", "sub/b.txt")
	same("subcopy/b.txt", "sub/b.txt")
	same("subcopy/deeper/random.bin", "sub/deeper/random.bin")
	same("subcopy/deeper/empty", "sub/deeper/empty")
	same("big255k.bin", "sub/deeper/random.bin")
	same("name with spaces.txt", "name with spaces.txt")
	same("via-parent.txt", "a.txt")

	// A full 256 KiB request must not break the client either (it gets a
	// short read and asks for the rest).
	out, err = ts.sftpBatch(t, work, "get /sub/deeper/random.bin big256k.bin\n", "-B", "262144")
	if err != nil {
		t.Fatalf("sftp -B 262144: %v\n%s", err, out)
	}
	same("big256k.bin", "sub/deeper/random.bin")

	if after := atimes(t, f.share); !equalMaps(beforeAtimes, after) {
		t.Errorf("serving files changed access times (O_NOATIME not used?)")
	}
	if after := treeHash(t, f.share); after != before {
		t.Errorf("the shared tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOpenSSHBatchWritesRefused runs every write operation the OpenSSH
// client has, each in its own batch so that each must fail by itself, and
// checks the error is "Permission denied" and the tree is unchanged.
func TestOpenSSHBatchWritesRefused(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, nil)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "upload.txt"), []byte(strings.Repeat("new content, longer than any file it could replace\n", 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, f.share)
	ops := []string{
		"put upload.txt",                 // create
		"put upload.txt a.txt",           // overwrite (truncate)
		"put upload.txt sub/new.txt",     // create in a subdirectory
		"reput upload.txt a.txt",         // append / resume
		"mkdir newdir",                   // mkdir
		"rmdir emptydir",                 // rmdir
		"rm a.txt",                       // remove
		"rm link",                        // remove a symlink
		"rename a.txt renamed.txt",       // posix-rename@openssh.com
		"chmod 600 a.txt",                // setstat
		"chown 1 a.txt",                  // setstat
		"chgrp 1 a.txt",                  // setstat
		"symlink a.txt newlink",          // symlink
		"ln a.txt hardlink",              // hardlink@openssh.com
		"ln -s a.txt softlink",           // symlink
		"put upload.txt /",               // a directory as target
		"put upload.txt ../escape.txt",   // and outside
		"put upload.txt /tmp/escape.txt", // absolute path
	}
	for _, op := range ops {
		out, err := ts.sftpBatch(t, work, op+"\n")
		if err == nil {
			t.Errorf("%q succeeded; want it refused:\n%s", op, out)
			continue
		}
		if !strings.Contains(out, "Permission denied") {
			t.Errorf("%q failed without 'Permission denied':\n%s", op, out)
		}
	}
	if after := treeHash(t, f.share); after != before {
		t.Errorf("the shared tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, p := range []string{filepath.Join(f.base, "escape.txt"), "/tmp/escape.txt"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
}

// TestOpenSSHBatchHostilePaths tries to read outside the share with the
// OpenSSH client: every attempt fails and the secret never arrives.
func TestOpenSSHBatchHostilePaths(t *testing.T) {
	f := newFixture(t, true)
	ts := startTestShare(t, f.share, nil)
	work := t.TempDir()
	before := treeHash(t, f.share)
	rel, err := filepath.Rel(f.share, f.secret)
	if err != nil {
		t.Fatal(err)
	}
	gets := []string{
		"../outside/secret",
		"/../outside/secret",
		"../../../../../../.." + f.secret,
		f.secret,
		"/" + rel,
		"//" + rel,
		"out",
		"absout",
		"outdir/secret",
		"absoutdir/secret",
		"chain1",
		"chain2",
		"loop1",
		"rootlink/etc/passwd",
		"sub/passwd",
		"/etc/passwd",
		"../../../../etc/passwd",
		"fifo",
	}
	refused := 0
	for i, p := range gets {
		local := filepath.Join(work, "got", strings.Repeat("x", i+1))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := ts.sftpBatch(t, work, "get \""+p+"\" "+local+"\n")
		if err == nil {
			t.Errorf("get %q succeeded; want it refused:\n%s", p, out)
		} else {
			refused++
		}
		if b, _ := os.ReadFile(local); bytes.Contains(b, []byte("TOP-SECRET")) || bytes.Contains(b, []byte("root:")) {
			t.Errorf("get %q leaked outside data", p)
		}
	}
	lists := []string{"outdir", "absoutdir", "rootlink", "rootlink/etc", "/..", "../..", "../outside"}
	for _, p := range lists {
		out, _ := ts.sftpBatch(t, work, "ls -la \""+p+"\"\n")
		if strings.Contains(out, secretName) || strings.Contains(out, "passwd") {
			t.Errorf("ls %q listed outside the share:\n%s", p, out)
		} else {
			refused++
		}
	}
	t.Logf("hostile OpenSSH requests refused: %d of %d", refused, len(gets)+len(lists))
	if after := treeHash(t, f.share); after != before {
		t.Errorf("the shared tree changed")
	}
}
