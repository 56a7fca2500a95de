//go:build !linux

package fs

import (
	"errors"
	"fmt"
	"os"
)

// checkUser: the fusermount3 checks are Linux's.
func (o Options) checkUser(dir string) error { return nil }

// directMountFlags: go-fuse's defaults (DirectMount is Linux's).
const directMountFlags = 0

func explainMountError(dir string, err error, o Options) error {
	if errors.Is(err, os.ErrNotExist) && fileMissing("/dev/fuse") {
		return fmt.Errorf("mount %s: /dev/fuse is missing: %w", dir, err)
	}
	return fmt.Errorf("mount %s: %w", dir, err)
}

func fileMissing(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, os.ErrNotExist)
}
