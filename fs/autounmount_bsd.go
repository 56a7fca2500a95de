//go:build darwin || freebsd

package fs

import (
	"errors"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// autoUnmount needs Linux's fusermount3.
type autoUnmount struct{}

func mountAutoUnmount(dir string, mo *fuse.MountOptions) (string, *autoUnmount, error) {
	return "", nil, errors.New("-o auto_unmount needs fusermount3 (Linux)")
}

func (au *autoUnmount) unmount(dir string) error { return nil }
