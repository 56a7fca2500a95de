//go:build linux

package fs

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// autoUnmount is a mount made by fusermount3 -o auto_unmount: fusermount3
// stays behind, holding one end of a socket whose other end is ours,
// and unmounts the file system when that socket closes: when this
// process exits, even by SIGKILL. go-fuse cannot make such a mount (it
// waits for fusermount3 to exit), so it is made here, as libfuse does,
// and go-fuse serves the descriptor it hands back ("/dev/fd/N").
type autoUnmount struct {
	comm *os.File  // closing it unmounts
	proc *exec.Cmd // the fusermount3 that stays behind
	done chan struct{}
}

// mountAutoUnmount has fusermount3 mount dir and returns the FUSE
// descriptor's magic path for fuse.NewServer.
func mountAutoUnmount(dir string, mo *fuse.MountOptions) (string, *autoUnmount, error) {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		return "", nil, fmt.Errorf("auto_unmount needs fusermount3: %w", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("socketpair: %w", err)
	}
	local, remote := os.NewFile(uintptr(fds[0]), "fusermount-local"), os.NewFile(uintptr(fds[1]), "fusermount-remote")
	defer remote.Close() // fusermount3 gets it as fd 3; the CLOEXEC local end it must not get
	opts := append(append([]string{}, mo.Options...), "fsname="+mo.FsName, "subtype="+mo.Name, fmt.Sprintf("max_read=%d", mo.MaxWrite))
	if mo.AllowOther {
		opts = append(opts, "allow_other")
	}
	cmd := exec.Command(bin, "-o", strings.Join(opts, ","), "--", dir)
	cmd.Env = []string{"_FUSE_COMMFD=3"}
	var stderr bytes.Buffer // read once it exited; its reason, when it refuses
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{remote}
	if err := cmd.Start(); err != nil {
		local.Close()
		return "", nil, fmt.Errorf("start fusermount3: %w", err)
	}
	au := &autoUnmount{comm: local, proc: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(au.done) }()
	fd, err := receiveFD(local)
	if err != nil {
		local.Close()
		<-au.done
		return "", nil, fmt.Errorf("fusermount3 %v: %s", cmd.ProcessState, strings.TrimSpace(stderr.String()))
	}
	syscall.CloseOnExec(fd)
	return fmt.Sprintf("/dev/fd/%d", fd), au, nil
}

// receiveFD reads the descriptor fusermount3 sends over the socket.
func receiveFD(sock *os.File) (int, error) {
	conn, err := net.FileConn(sock)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	var data [4]byte
	oob := make([]byte, syscall.CmsgSpace(4))
	_, oobn, _, _, err := conn.(*net.UnixConn).ReadMsgUnix(data[:], oob)
	if err != nil {
		return -1, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("no descriptor from fusermount3 (%v)", err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("no descriptor from fusermount3 (%v)", err)
	}
	return fds[0], nil
}

// unmount unmounts dir, then closes our end of the socket so that
// fusermount3 exits. (fusermount3 itself unmounts only a dead file
// system: one whose FUSE descriptor is closed.)
func (au *autoUnmount) unmount(dir string) error {
	var err error
	if os.Geteuid() == 0 {
		err = syscall.Unmount(dir, 0)
	} else if out, ferr := exec.Command("fusermount3", "-u", "--", dir).CombinedOutput(); ferr != nil {
		err = fmt.Errorf("fusermount3 -u: %v: %s", ferr, strings.TrimSpace(string(out)))
	}
	au.comm.Close()
	if err != nil {
		return err
	}
	select {
	case <-au.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("fusermount3 (pid %d) did not unmount within 5 s", au.proc.Process.Pid)
	}
}
