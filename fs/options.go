package fs

import (
	"errors"
	"log/slog"
	"time"

	"github.com/dsftp/dsftp/fs/mountinfo"
	"github.com/dsftp/dsftp/peers"
)

// fsType is how a dsftp mount shows in the mount table.
const fsType = "fuse.dsftp"

// Defaults for Options fields left zero.
const (
	DefaultAttrTTL    = 10 * time.Second
	DefaultCacheSize  = 100000
	DefaultMaxListing = 1000000
	// DefaultPrefetchMemory is the mount's default bound on prefetched
	// file contents, in bytes.
	DefaultPrefetchMemory = 64 << 20
)

// The attribute lifetimes of a file held open for followAfter (see
// node.Getattr and holder): a reader polling fstat once a second (tail -f)
// sees a file grow within about 1.3 s, at one lstat per poll; a program
// calling fstat in a loop costs at most one lstat per openAttrAge. They
// apply only where they are shorter than AttrTTL.
const (
	followAfter    = time.Second
	openAttrAge    = 200 * time.Millisecond
	openAttrKernel = 100 * time.Millisecond
)

// Options configure Mount.
type Options struct {
	// Registry lists the live peers; the root shows one directory each.
	Registry *peers.Registry
	// Pool carries all remote operations: PoolRemote of the session
	// pool, or a fake in tests.
	Pool Remote
	// AttrTTL is how long attributes, listings and negative lookups are
	// cached, here and in the kernel. Negative means no caching.
	AttrTTL time.Duration
	// CacheSize bounds the number of cached attribute entries, and the
	// inodes of peers' files held for the kernel (inodes.go).
	CacheSize int
	// MaxListing caps the entries of one directory listing: a peer's
	// directory with more shows only the first MaxListing it sends (and
	// a warning is logged once). Cached listings hold at most
	// max(MaxListing, CacheSize) entries in total.
	MaxListing int
	// PrefetchMemory bounds the content cache of the sibling prefetch
	// (prefetch.go), in bytes; zero switches the prefetch off (the
	// mount's --prefetch-memory defaults to DefaultPrefetchMemory).
	PrefetchMemory int64
	// UID and GID own every file; nil means the mounting process's.
	UID, GID *uint32
	// Umask clears permission bits of every mode shown (octal, like 022).
	Umask uint32
	// AllowOther lets other users see the mount (needs user_allow_other
	// in /etc/fuse.conf unless root).
	AllowOther bool
	// AllowRoot lets root, besides the mounting user, see the mount (same
	// need as AllowOther).
	AllowRoot bool
	// AutoUnmount has fusermount3 unmount the file system when this
	// process dies, even by SIGKILL (Linux).
	AutoUnmount bool
	// FsName is the source shown by mount and df ("dsftp" if empty);
	// Subtype makes the type fuse.<Subtype> ("fuse.dsftp" if empty).
	FsName, Subtype string
	// AllowNonEmpty lets Check accept a mountpoint that holds files
	// (the mount hides them while it lasts).
	AllowNonEmpty bool
	// Ready, if set, is called once Run serves the mounted file system.
	Ready func()
	// Logger receives mount events; nil means slog.Default().
	Logger *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
}

// ErrBadMountpoint is wrapped by PrepareMountpoint when the mountpoint
// itself is wrong (missing, not a directory): the user's to fix, which
// the command reports as a usage error.
var ErrBadMountpoint = errors.New("bad mountpoint")

// mountpointError is an ErrBadMountpoint with its own message.
type mountpointError struct{ msg string }

func (e mountpointError) Error() string        { return e.msg }
func (e mountpointError) Is(target error) bool { return target == ErrBadMountpoint }

// MountType returns the type of the file system visible at dir (the last
// one mounted exactly there), or "" when dir is no mount point.
func MountType(dir string) string {
	types := mountinfo.Types(dir)
	if len(types) == 0 {
		return ""
	}
	return types[len(types)-1]
}

// Mounts lists the mountpoints of every dsftp file system on this machine
// (in this mount namespace).
func Mounts() []string { return mountinfo.Of(fsType) }
