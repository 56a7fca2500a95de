// Package policy decides what of a shared directory a client sees: the
// policy of what is shared, apart from the server that serves it and the
// limits that protect that server.
//
// A View opens the directory as an os.Root and answers every client path
// through it: hidden names, the share's .dsftpignore (go-git's gitignore
// rules), dsftp's own mounts inside it, files that hold a private key or a
// dsftp secret, and symlinks that leave the share or lead to any of these
// are absent ("no such file"), exactly as a path that is not there. Files
// are opened with O_NOATIME where the kernel allows it, so serving them
// leaves no trace on disk. What it withholds and why: share/SECURITY.md.
package policy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// Options configure a View. New fills in the defaults of zero values
// (see withDefaults).
type Options struct {
	// Dir is the directory to share. It must exist and be listable.
	// Empty means the working directory.
	Dir string
	// ShareHidden serves hidden files and directories (a name starting
	// with "."). Off by default: dotfiles and dot-directories are where
	// keys, tokens and shell history live.
	ShareHidden bool
	// SecretFiles are files never served whatever else the rules say:
	// dsftp's Discord token file and host key file, and copies of them.
	// Files holding a private key are withheld anyway (see scanFile).
	SecretFiles []string
	// SecretDirs are directories whose files are never served under any
	// name: a hard link into them is withheld. Nil means defaultSecretDirs
	// (~/.ssh, ~/.gnupg and dsftp's configuration directory); an empty
	// slice, none.
	SecretDirs []string
	// ExcludeMounts returns absolute mountpoints that are never served,
	// nor anything below them: dsftp's own FUSE mounts, which would
	// otherwise loop peers through each other's shares. It is called
	// about once a second. Nil excludes none.
	ExcludeMounts func() []string
	// Logger receives the files left out of listings and refused to
	// clients (once per path and reason) and reloads of the ignore rules.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns o with every zero value that has a default
// replaced by it: the one place the defaults are filled in.
func (o Options) withDefaults() Options {
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.SecretDirs == nil {
		o.SecretDirs = defaultSecretDirs()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// New opens the shared directory and reads its ignore rules. It fails
// with a message for the user when the directory cannot be shared: it
// does not exist, cannot be listed, has an unreadable .dsftpignore, or
// lies inside an excluded mount (a share of a dsftp mount would pass the
// peers' shares on).
func New(opts Options) (*View, error) {
	opts = opts.withDefaults()
	root, real, err := openShareDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	v, err := newView(root, real, opts)
	if err != nil {
		root.Close()
		return nil, err
	}
	return v, nil
}

// newView sets up the rules for the opened root.
func newView(root *os.Root, real string, opts Options) (*View, error) {
	ignore, err := newIgnoreRules(root, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("share directory %s: %w", real, err)
	}
	if opts.ExcludeMounts != nil {
		for _, m := range opts.ExcludeMounts() {
			if _, inside := absInside(m, real); inside {
				return nil, fmt.Errorf("share directory %s is inside the dsftp mount %s: sharing it would pass peers' shares on; share a folder of your own", real, m)
			}
		}
	}
	log := &refusalLog{log: opts.Logger}
	v := &View{
		root:       root,
		rootReal:   real,
		showHidden: opts.ShareHidden,
		ignore:     ignore,
		mounts:     newExcludedMounts(opts.ExcludeMounts, real),
		secrets:    newSecretGuard(opts.SecretFiles, opts.SecretDirs, log),
		log:        log,
	}
	v.noatime.Store(true)
	return v, nil
}

// Close releases the shared directory; every later open fails.
func (v *View) Close() error { return v.root.Close() }

// Dir is the real path of the shared directory, symlinks resolved.
func (v *View) Dir() string { return v.rootReal }

// IgnoreRules is the number of rules in force from the share's
// .dsftpignore.
func (v *View) IgnoreRules() int { return v.ignore.Count() }

// ReloadIgnore re-reads .dsftpignore at once and returns the number of
// rules in force; if the file cannot be read, the previous rules stay.
func (v *View) ReloadIgnore() (int, error) { return v.ignore.reload() }

// openShareDir checks that dir exists, is a directory and can be listed,
// and opens it as an os.Root.
func openShareDir(dir string) (*os.Root, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", fmt.Errorf("share directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("share directory %s does not exist; give an existing directory (dsftp share DIR)", abs)
	case errors.Is(err, fs.ErrPermission):
		return nil, "", fmt.Errorf("share directory %s: permission denied; give a directory you can read", abs)
	case err != nil:
		return nil, "", fmt.Errorf("share directory %s: %w", abs, err)
	case !fi.IsDir():
		return nil, "", fmt.Errorf("share directory %s is not a directory; give a directory, not a file", abs)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, "", fmt.Errorf("open share directory %s: %w", abs, err)
	}
	// Opening needs only search permission; sharing needs listing.
	// O_NOATIME: starting a share leaves the directory as it was.
	d, err := root.OpenFile(".", os.O_RDONLY|oNoatime, 0)
	if errors.Is(err, syscall.EPERM) {
		d, err = root.Open(".")
	}
	if err == nil {
		_, err = d.ReadDir(1)
		d.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		root.Close()
		if errors.Is(err, fs.ErrPermission) {
			return nil, "", fmt.Errorf("share directory %s is not readable (permission denied); give a directory you can list, or fix its mode", abs)
		}
		return nil, "", fmt.Errorf("list share directory %s: %w", abs, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		root.Close()
		return nil, "", fmt.Errorf("share directory %s: %w", abs, err)
	}
	return root, real, nil
}
