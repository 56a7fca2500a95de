//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// BuildProgram builds the main package pkg (an import path inside the
// module, e.g. "./testdata/portmaptest") once per test
// process, with -race when the test has it, and returns the executable's
// path. Build before running it in a network namespace: the Go toolchain
// cannot reach the module proxy from inside.
func BuildProgram(t testing.TB, pkg string) string {
	t.Helper()
	External(t)
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "dsftp-progs-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
		built.add(d)
	}
	out := filepath.Join(buildDir, fmt.Sprintf("%s-%d", path.Base(pkg), len(buildCache)))
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}

// built are the directories the programs were built in, removed by Main.
var built dirs

type dirs struct {
	mu sync.Mutex
	l  []string
}

func (d *dirs) add(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.l = append(d.l, dir)
}

// Main runs the tests of a package that builds programs (Binary,
// BuildProgram) and removes what was built: the builds outlive every
// single test, so no t.Cleanup can.
func Main(m *testing.M) {
	// Child dsftp processes started without testenv.Start (exec.Command)
	// inherit this: no public STUN server is asked (withSTUNDefault).
	if _, set := os.LookupEnv("DSFTP_STUN"); !set {
		os.Setenv("DSFTP_STUN", "none")
	}
	// Nor a TURN server of the developer's own.
	os.Unsetenv("DSFTP_TURN")
	code := m.Run()
	built.mu.Lock()
	for _, d := range built.l {
		os.RemoveAll(d)
	}
	built.mu.Unlock()
	os.Exit(code)
}
