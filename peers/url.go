package peers

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ParsePeerFlag parses a --peer value, NAME=sftp://[user@]host[:port][/path][?fingerprint=SHA256:…],
// into a Peer with Source SourceFlag. The peer's ID is the pinned
// fingerprint, or the URL itself when no fingerprint is given (then
// ~/.ssh/known_hosts decides whether the host key is trusted).
func ParsePeerFlag(s string) (Peer, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || !strings.Contains(raw, "://") {
		return Peer{}, fmt.Errorf("--peer %q: want NAME=sftp://[user@]host[:port][/path][?fingerprint=SHA256:...]", s)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return Peer{}, fmt.Errorf("--peer %q: the NAME before '=' is empty", s)
	}
	p, err := ParsePeerURL(raw)
	if err != nil {
		return Peer{}, fmt.Errorf("--peer %s: %w", name, err)
	}
	p.Name = name
	return p, nil
}

// ParsePeerURL parses sftp://[user@]host[:port][/path][?fingerprint=SHA256:…].
// The fingerprint is read verbatim, so the '+' and '/' of the base64 form
// that `ssh-keygen -l` prints need no escaping.
func ParsePeerURL(raw string) (Peer, error) {
	// Split the query off by hand: url.Parse would turn '+' into ' '.
	base, query, _ := strings.Cut(raw, "?")
	u, err := url.Parse(base)
	if err != nil {
		return Peer{}, fmt.Errorf("parse URL %q: %w", raw, err)
	}
	if u.Scheme != "sftp" {
		return Peer{}, fmt.Errorf("URL %q: scheme must be sftp://", raw)
	}
	if u.Opaque != "" || u.Host == "" {
		return Peer{}, fmt.Errorf("URL %q: no host; want sftp://[user@]host[:port][/path]", raw)
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return Peer{}, fmt.Errorf("URL %q: passwords in URLs are not supported; use keys (--identity or ssh-agent)", redact(u))
		}
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "22"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Peer{}, fmt.Errorf("URL %q: bad port %q", raw, port)
	}
	p := Peer{
		Addrs:  []string{net.JoinHostPort(host, port)},
		Source: SourceFlag,
	}
	if u.User != nil {
		p.User = u.User.Username()
	}
	if u.Path != "" && u.Path != "/" {
		p.Path = path.Clean(u.Path)
	} else if u.Path == "/" {
		p.Path = "/"
	}
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "fingerprint":
			fp, err := url.PathUnescape(v) // keeps '+' as is
			if err != nil {
				return Peer{}, fmt.Errorf("URL %q: fingerprint: %w", raw, err)
			}
			if err := CheckFingerprint(fp); err != nil {
				return Peer{}, fmt.Errorf("URL %q: %w", raw, err)
			}
			p.HostKeyFingerprint = fp
		default:
			return Peer{}, fmt.Errorf("URL %q: unknown query parameter %q (only fingerprint= is supported)", raw, k)
		}
	}
	p.ID = p.HostKeyFingerprint
	if p.ID == "" {
		p.ID = raw
	}
	return p, nil
}

// CheckFingerprint validates a "SHA256:<base64>" host key fingerprint as
// ssh-keygen -l prints it.
func CheckFingerprint(fp string) error {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if !ok {
		return fmt.Errorf("fingerprint %q must start with SHA256: (as `ssh-keygen -l -f KEY` prints it)", fp)
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(b) != 32 {
		return fmt.Errorf("fingerprint %q is not a SHA256 fingerprint (want SHA256: and 43 base64 characters)", fp)
	}
	return nil
}

func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}
