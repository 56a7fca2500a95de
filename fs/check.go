package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Check refuses, before anything is started, what would make the mount
// at dir (absolute, prepared) fail or surprise: a non-empty dir without
// AllowNonEmpty, and for a user other than root the usual fusermount3
// failures (on Linux), each said in one line with its fix.
func (o Options) Check(dir string) error {
	if !o.AllowNonEmpty {
		if name, err := firstEntry(dir); err != nil {
			return fmt.Errorf("mountpoint %s: %w", dir, err)
		} else if name != "" {
			return mountpointError{fmt.Sprintf("mountpoint %s is not empty (it holds %q); mounting would hide its files: pick an empty directory or pass --allow-non-empty", dir, name)}
		}
	}
	return o.checkUser(dir)
}

// firstEntry returns the name of one entry of dir, or "" if it is empty.
func firstEntry(dir string) (string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return names[0], nil
}
