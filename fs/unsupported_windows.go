package fs

import (
	"context"
	"errors"
	"log/slog"
)

// errNoMount is why mount fails on Windows: go-fuse is Linux, macOS and
// FreeBSD only, and WinFsp is not wired in.
var errNoMount = errors.New("dsftp mount is not available on Windows: use dsftp shell (browse and download), dsftp get PEER:PATH, or dsftp mount inside WSL")

// Mount is what New returns elsewhere; on Windows New always fails.
type Mount struct{ Dir string }

// New fails on Windows; see errNoMount.
func New(dir string, opts Options) (*Mount, error) { return nil, errNoMount }

// PrepareMountpoint fails at once on Windows, before anything is shared.
func PrepareMountpoint(dir string, create bool, log *slog.Logger) (string, error) {
	return "", errNoMount
}

// Run never runs: New fails.
func (m *Mount) Run(ctx context.Context) error { return errNoMount }

// Unmount never runs: New fails.
func (m *Mount) Unmount() error { return errNoMount }

// Wait never runs: New fails.
func (m *Mount) Wait() {}

// FlushCaches does nothing: there is no mount.
func (m *Mount) FlushCaches() {}
