package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// shareDirChoice is what a command was told to share.
type shareDirChoice struct {
	dir      string // as given, or "." for the working directory
	explicit bool   // a DIR argument or --share, rather than the default
}

// errHomeShare is returned when the working directory would share the
// home folder (or / or a folder above it) without being asked to.
var errHomeShare = errors.New("refusing to share the home folder by default")

// checkShareDir refuses an implicit share of the home folder, /, or a
// folder that holds the home folder: the working directory is shared by
// default, and a terminal opens in the home folder, where keys, tokens
// and mail live. An explicit choice is honoured with a warning to warn.
// how says, for the message, how this command is run ("dsftp mount
// ~/peers"); noShare whether --no-share exists.
func checkShareDir(c shareDirChoice, how string, noShare bool, warn io.Writer) error {
	abs, err := filepath.Abs(c.dir)
	if err != nil {
		return fmt.Errorf("share directory %s: %w", c.dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil // share.New reports a missing directory in its words
	}
	home := homeDir()
	if !coversHome(real, home) {
		return nil
	}
	what := "your home folder"
	if real != home {
		what = "a folder that holds your home folder (" + home + ")"
	}
	if c.explicit {
		fmt.Fprintf(warn, "warning: sharing %s, %s, as asked; hidden files, private keys and .dsftpignore entries stay unshared\n", real, what)
		return nil
	}
	rows := [][2]string{{"cd ~/Public && " + how, "share the folder you are in"}}
	if noShare {
		rows = append(rows, [2]string{how + " --share ~/Public", "share another folder"}, [2]string{how + " --no-share", "share nothing"})
	} else {
		rows = append(rows, [2]string{how + " ~/Public", "share another folder"})
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: not sharing %s, %s.\n", errHomeShare, real, what)
	fmt.Fprintf(&b, "dsftp shares the folder it is started in, and this one holds everything you own. Pick one:")
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  %-*s   %s", width, r[0], r[1])
	}
	return usageError{errors.New(b.String())}
}

// homeDir is the real path of the user's home folder, or "" if unknown.
func homeDir() string {
	h, err := os.UserHomeDir()
	if err != nil || h == "" {
		return ""
	}
	if r, err := filepath.EvalSymlinks(h); err == nil {
		return r
	}
	return filepath.Clean(h)
}

// coversHome reports whether sharing dir would share home: dir is home,
// the file system root, or a folder above home.
func coversHome(dir, home string) bool {
	if dir == string(filepath.Separator) {
		return true
	}
	if home == "" {
		return false
	}
	rel, err := filepath.Rel(dir, home)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// excludeMountsFunc returns the share's ExcludeMounts: our own
// mountpoint (if any) and every dsftp FUSE mount on the machine, so that
// no share serves a peers folder and loops peers through each other.
func excludeMountsFunc(own string) func() []string {
	if own != "" {
		if r, err := filepath.EvalSymlinks(own); err == nil {
			own = r
		}
	}
	return func() []string {
		ms := dsftpMounts()
		if own != "" {
			ms = append(ms, own)
		}
		return ms
	}
}

// audience says who can read the share, for the banner.
func audience(discord bool, channel string, lan bool, authorizedKeys string, password bool) string {
	var who []string
	if discord {
		who = append(who, "everyone who can post in #"+strings.TrimPrefix(channel, "#")+" on Discord")
	}
	if lan {
		who = append(who, "anyone on this LAN who runs dsftp")
	}
	if authorizedKeys != "" {
		who = append(who, "the keys in "+authorizedKeys)
	}
	if password {
		who = append(who, "anyone with the password")
	}
	if len(who) == 0 {
		return "nobody yet (no discovery, no --authorized-keys, no --password)"
	}
	return strings.Join(who, "; ")
}
