package fs

import (
	"fmt"
	"strconv"
	"strings"
)

// MountOptionNames are the -o options ParseMountOptions accepts, sorted.
var MountOptionNames = []string{"allow_other", "allow_root", "auto_unmount", "default_permissions",
	"fsname", "gid", "nodev", "nosuid", "ro", "subtype", "uid", "umask"}

// ParseMountOptions applies a -o list ("allow_other,uid=1000,umask=022";
// -o may be given several times) to o, as sshfs and rclone take them. ro,
// nosuid, nodev and default_permissions are always on and accepted as
// such. An unknown option, or one missing its value, is an error naming it.
func (o *Options) ParseMountOptions(list string) error {
	for _, opt := range strings.Split(list, ",") {
		if opt == "" {
			continue
		}
		name, val, hasVal := strings.Cut(opt, "=")
		if err := o.setMountOption(name, val, hasVal); err != nil {
			return fmt.Errorf("-o %s: %w", opt, err)
		}
	}
	return nil
}

func (o *Options) setMountOption(name, val string, hasVal bool) error {
	switch name {
	case "uid", "gid", "umask", "fsname", "subtype":
		if !hasVal || val == "" {
			return fmt.Errorf("%s needs a value (%s=…)", name, name)
		}
	case "ro", "nosuid", "nodev", "default_permissions", "allow_other", "allow_root", "auto_unmount":
		if hasVal {
			return fmt.Errorf("%s takes no value", name)
		}
	default:
		return fmt.Errorf("unknown mount option %q; known: %s", name, strings.Join(MountOptionNames, ", "))
	}
	switch name {
	case "uid", "gid":
		id, err := ParseID(val)
		if err != nil {
			return err
		}
		if name == "uid" {
			o.UID = &id
		} else {
			o.GID = &id
		}
	case "umask":
		m, err := ParseUmask(val)
		if err != nil {
			return err
		}
		o.Umask = m
	case "fsname":
		if strings.ContainsAny(val, ",\\") {
			return fmt.Errorf("fsname %q: no comma or backslash", val)
		}
		o.FsName = val
	case "subtype":
		if strings.ContainsAny(val, "/ ,\t") {
			return fmt.Errorf("subtype %q: no slash, comma or space", val)
		}
		o.Subtype = val
	case "allow_other":
		o.AllowOther = true
	case "allow_root":
		o.AllowRoot = true
	case "auto_unmount":
		o.AutoUnmount = true
	}
	return nil
}

// ParseID reads a numeric user or group id.
func ParseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a numeric user or group id", s)
	}
	return uint32(n), nil
}

// ParseUmask reads an octal umask such as 022 or 0077.
func ParseUmask(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("umask %q: want octal digits from 000 to 777, such as 022", s)
	}
	return uint32(n), nil
}
