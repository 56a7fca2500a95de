package punch

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
)

// DefaultTURNPort is the port of a --turn URL that names none (RFC 8656).
const DefaultTURNPort = 3478

// maxTURNCredential bounds the user name and the password: STUN's USERNAME
// attribute holds at most 513 bytes, and no real password is longer.
const maxTURNCredential = 513

// TURNServer is one TURN server and the long-term credentials to allocate
// on it. The credentials are a secret: String, GoString and LogValue show
// only the server, and no error of this package quotes them.
type TURNServer struct {
	// Host is HOST:PORT.
	Host       string
	user, pass string
}

// String is the server as turn://HOST:PORT, without the credentials.
func (s TURNServer) String() string { return "turn://" + s.Host }

// GoString keeps the credentials out of %#v too.
func (s TURNServer) GoString() string { return "punch.TURNServer{" + s.String() + "}" }

// LogValue keeps the credentials out of logs.
func (s TURNServer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// errTURNForm is the form every --turn error names.
var errTURNForm = errors.New("want turn://USER:PASS@HOST:PORT")

// ParseTURN turns the values of a repeatable --turn flag into the servers
// to allocate on, in order. An error names the value by its host only (or
// not at all when even that cannot be read): the value holds a password.
func ParseTURN(values []string) ([]TURNServer, error) {
	out := make([]TURNServer, 0, len(values))
	for i, v := range values {
		s, err := parseTURN(v)
		if err != nil {
			return nil, fmt.Errorf("--turn (value %d of %d): %w", i+1, len(values), err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseTURN(v string) (TURNServer, error) {
	u, err := url.Parse(v)
	if err != nil {
		// url's error quotes the value, password included.
		return TURNServer{}, fmt.Errorf("not a URL (not shown: it holds a password; characters such as @ : / # %% in the password are written %%40 %%3A %%2F %%23 %%25): %w", errTURNForm)
	}
	switch u.Scheme {
	case "turn":
	case "turns":
		return TURNServer{}, fmt.Errorf("turns: (TURN over TLS) is not supported: %w", errTURNForm)
	default:
		return TURNServer{}, fmt.Errorf("the scheme must be turn: %w", errTURNForm)
	}
	host := u.Hostname()
	if u.Opaque != "" || host == "" {
		return TURNServer{}, fmt.Errorf("no server named: %w", errTURNForm)
	}
	where := "turn://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.Fragment != "" || (u.RawQuery != "" && u.RawQuery != "transport=udp") {
		return TURNServer{}, fmt.Errorf("%s: a path, fragment or query other than ?transport=udp is not accepted (dsftp speaks TURN over UDP only): %w", where, errTURNForm)
	}
	port := DefaultTURNPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return TURNServer{}, fmt.Errorf("%s: the port must be a number from 1 to 65535: %w", where, errTURNForm)
		}
		port = n
	}
	s := TURNServer{Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if u.User == nil {
		return TURNServer{}, fmt.Errorf("%s: no user name and password: %w", s, errTURNForm)
	}
	pass, ok := u.User.Password()
	s.user, s.pass = u.User.Username(), pass
	switch {
	case !ok || s.user == "" || s.pass == "":
		return TURNServer{}, fmt.Errorf("%s: both a user name and a password are needed: %w", s, errTURNForm)
	case len(s.user) > maxTURNCredential || len(s.pass) > maxTURNCredential:
		return TURNServer{}, fmt.Errorf("%s: the user name or password is longer than %d bytes", s, maxTURNCredential)
	}
	return s, nil
}
