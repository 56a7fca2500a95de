package instance

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dsftp/dsftp/peers"
)

// DefaultHostKeyFile is the host key used without --host-key, so that a
// member is the same key (the same peer) across runs:
// $XDG_CONFIG_HOME/dsftp/host_key (~/.config/dsftp/host_key), created
// with mode 0600 on first use. Several dsftp on one machine cannot share
// one identity: while another running dsftp holds the key (a lock next to
// it), this one uses a new key for the run and says so. "" means a
// per-run key.
func DefaultHostKeyFile(log *slog.Logger) string {
	if hostKeyLock != nil {
		return hostKeyPath // this process holds it already
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		log.Warn("no configuration directory for a lasting host key; using a new key for this run", "err", err)
		return ""
	}
	dir = filepath.Join(dir, "dsftp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("cannot create the configuration directory; using a new host key for this run", "dir", dir, "err", err)
		return ""
	}
	path := filepath.Join(dir, "host_key")
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		log.Warn("cannot lock the host key; using a new key for this run", "err", fmt.Errorf("open %s.lock: %w", path, err))
		return ""
	}
	if err := tryLock(lock); err != nil {
		lock.Close()
		log.Info("another dsftp on this machine uses the host key; this one uses a new key for this run (pin one with --host-key FILE)", "host_key", path)
		return ""
	}
	// The lock is held until the process exits: lock stays open.
	hostKeyLock, hostKeyPath = lock, path
	return path
}

var (
	hostKeyLock *os.File
	hostKeyPath string
)

// useNameBook lets reg remember which key held each name across runs
// ($XDG_STATE_HOME/dsftp/known_names); without it, names still work,
// only first come first served.
func useNameBook(reg *peers.Registry, log *slog.Logger) {
	path, err := peers.DefaultNameBookPath()
	if err == nil {
		var book *peers.NameBook
		if book, err = peers.OpenNameBook(path); err == nil {
			reg.SetNameBook(book, func(err error) { log.Warn("cannot remember peer names", "err", err) })
			return
		}
	}
	log.Warn("peer names are not remembered across runs", "err", err)
}
