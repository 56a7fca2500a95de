package lifecycle

import (
	"fmt"
	"runtime/debug"
)

// version and commit are stamped by `make build` (-ldflags -X) for builds
// from a clone, where the build info has no module version and, with
// -buildvcs=false, no commit either.
var version, commit string

// Version is what --version and `dsftp version` print: the module
// version (v1.2.3 from go install, else the stamped `git describe`) and
// the commit.
func Version() string {
	v, c, dirty := version, commit, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("dsftp %s commit %s%s", v, c, dirty)
}
