// Package mountflags holds the flags of `dsftp mount` that shape the
// file system (-o and its flag equivalents, caching, the mountpoint) and
// turns them into fs.Options.
package mountflags

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/fs"
)

// Flags are the file system flags of `dsftp mount`.
type Flags struct {
	AttrTTL       time.Duration
	CacheSize     int
	MaxListing    int
	PrefetchMB    int
	Create        bool
	AllowOther    bool
	AllowNonEmpty bool
	DebugFUSE     bool
	Daemon        bool
	PIDFile       string
	Options       []string // -o, each a comma-separated list
	uid, gid      string
	umask         string
}

// Register adds the flags to fl.
func (f *Flags) Register(fl *pflag.FlagSet) {
	fl.DurationVar(&f.AttrTTL, "attr-ttl", fs.DefaultAttrTTL, "cache attributes and listings for this long (0 disables)")
	fl.IntVar(&f.CacheSize, "cache-size", fs.DefaultCacheSize, "most attribute entries cached, and most of the peers' files the kernel holds at once (beyond it the oldest are dropped, and looked up again when asked)")
	fl.IntVar(&f.MaxListing, "max-listing", fs.DefaultMaxListing, "most entries shown of one peer directory; bigger listings are cut, with a warning")
	fl.IntVar(&f.PrefetchMB, "prefetch-memory", fs.DefaultPrefetchMemory>>20, "`MiB` of file contents fetched ahead of a reader going through a directory's files in order (0 disables)")
	fl.BoolVar(&f.Create, "create", false, "create MOUNTPOINT if it does not exist")
	fl.BoolVar(&f.AllowOther, "allow-other", false, "let other users see the mount (needs user_allow_other in /etc/fuse.conf); same as -o allow_other")
	fl.BoolVar(&f.AllowNonEmpty, "allow-non-empty", false, "mount over a MOUNTPOINT that holds files (they are hidden while mounted)")
	fl.BoolVar(&f.DebugFUSE, "debug-fuse", false, "log every FUSE request (very verbose)")
	fl.BoolVar(&f.Daemon, "daemon", false, "run in the background: return once the mount is ready, printing its PID, then log to --log-file or the system log; SIGHUP then flushes the caches and re-reads .dsftpignore")
	fl.StringVar(&f.PIDFile, "pid-file", "", "write the PID of the process serving the mount to `FILE` (removed when it stops)")
	fl.StringArrayVarP(&f.Options, "option", "o", nil, "FUSE mount options `OPT[,OPT...]`: "+strings.Join(fs.MountOptionNames, ", "))
	fl.StringVar(&f.uid, "uid", "", "numeric `UID` owning every file (default: yours); same as -o uid=")
	fl.StringVar(&f.gid, "gid", "", "numeric `GID` owning every file (default: yours); same as -o gid=")
	fl.StringVar(&f.umask, "umask", "", "octal `MASK` cleared from every mode, like 022 (default: none, modes as on the peer); same as -o umask=")
}

// FSOptions returns the fs.Options the flags ask for: the -o options
// first, then the flags (which win where both are given).
func (f *Flags) FSOptions() (fs.Options, error) {
	o := fs.Options{CacheSize: f.CacheSize, MaxListing: f.MaxListing, Debug: f.DebugFUSE, PrefetchMemory: int64(f.PrefetchMB) << 20,
		AllowNonEmpty: f.AllowNonEmpty, AttrTTL: f.AttrTTL}
	if o.AttrTTL <= 0 {
		o.AttrTTL = -1 // fs.Options: negative is no caching, zero the default
	}
	for _, list := range f.Options {
		if err := o.ParseMountOptions(list); err != nil {
			return o, err
		}
	}
	o.AllowOther = o.AllowOther || f.AllowOther
	for _, id := range []struct {
		flag, val string
		dst       **uint32
	}{{"--uid", f.uid, &o.UID}, {"--gid", f.gid, &o.GID}} {
		if id.val == "" {
			continue
		}
		n, err := fs.ParseID(id.val)
		if err != nil {
			return o, fmt.Errorf("%s: %w", id.flag, err)
		}
		*id.dst = &n
	}
	if f.umask != "" {
		m, err := fs.ParseUmask(f.umask)
		if err != nil {
			return o, fmt.Errorf("--umask: %w", err)
		}
		o.Umask = m
	}
	return o, nil
}
