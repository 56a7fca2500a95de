//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestTailFollows runs the real tail -f on a file of a real share, through
// a real mount, while the share's file grows one line a second: every
// line arrives within 2 s of its write (the attribute cache keeps 10 s
// for files nobody holds open). That no extra request goes to the peer
// for such files is TestNodeOpenFileAttrs's (fs), which counts them.
func TestTailFollows(t *testing.T) {
	testenv.RequireFUSE(t)
	tail := testenv.Require(t, "tail")[0]
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "shared")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logPath, []byte("started\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := testenv.NewKey(t, tmp, "client")
	port := strconv.Itoa(testenv.FreePort(t))
	share := startShareBinary(t, dir, "--listen", "127.0.0.1:"+port, "--authorized-keys", key.Path+".pub", "--discovery", "off")
	_, fp := share.ShareReady(t)
	mnt := mountDir(t)
	testenv.StartNode(t, testenv.NodeOptions{}, "mount", mnt, "--no-share", "--discovery", "off",
		"--identity", key.Path, "--peer", "alice=sftp://x@127.0.0.1:"+port+"/?fingerprint="+fp)
	remote := filepath.Join(mnt, "alice", "app.log")
	testenv.WaitFor(t, 30*time.Second, "alice's app.log in the mount", func() bool {
		_, err := os.Stat(remote)
		return err == nil
	})

	cmd := exec.Command(tail, "-f", "-n", "+1", remote)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // by PID
		_ = cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if l := <-lines; l != "started" {
		t.Fatalf("tail's first line: %q", l)
	}

	const n = 12
	go func() {
		for i := range n {
			time.Sleep(time.Second)
			f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				panic(err)
			}
			fmt.Fprintf(f, "line %d %d\n", i, time.Now().UnixNano())
			f.Close()
		}
	}()
	var maxLag, sum time.Duration
	deadline := time.After(n*time.Second + 30*time.Second)
	for i := range n {
		var l string
		select {
		case l = <-lines:
		case <-deadline:
			t.Fatalf("tail -f printed %d of %d appended lines", i, n)
		}
		f := strings.Fields(l)
		ns, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 3 || f[1] != strconv.Itoa(i) || err != nil {
			t.Fatalf("tail -f printed %q, want line %d", l, i)
		}
		lag := time.Since(time.Unix(0, ns))
		sum += lag
		maxLag = max(maxLag, lag)
	}
	t.Logf("tail -f over the mount: %d lines appended 1 s apart, lag max %v, mean %v",
		n, maxLag.Round(time.Millisecond), (sum / n).Round(time.Millisecond))
	if maxLag > 2*time.Second {
		t.Errorf("a line reached tail -f %v after it was written; want within 2 s", maxLag.Round(time.Millisecond))
	}
}
