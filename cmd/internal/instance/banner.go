package instance

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/reach"
)

// ReadyPrefix starts the last banner line; tests and scripts wait for it.
const ReadyPrefix = "dsftp share ready on port "

// startShare makes the server, binds its port and prints the start-up
// banner to out: what is shared and with whom, addresses, host key
// fingerprint, password (if any) and a ready-to-paste sftp command line.
// who says who can read the share (see audience). The caller runs
// srv.Serve(ctx).
func startShare(opts share.Options, who string, out io.Writer) (*share.Server, error) {
	srv, err := share.New(opts)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return nil, err
	}
	printShareBanner(srv, opts, who, out)
	return srv, nil
}

// printShareBanner writes the start-up banner; see startShare.
func printShareBanner(srv *share.Server, opts share.Options, who string, out io.Writer) {
	port := srv.Port()
	addrs := reach.Local(srv.Addrs())
	shown := make([]string, 0, len(addrs))
	for _, a := range addrs {
		shown = append(shown, a.String())
	}
	fmt.Fprintf(out, "Sharing %s read-only over SFTP\n", srv.Dir())
	fmt.Fprintf(out, "  not shared    %s\n", notShared(srv))
	fmt.Fprintf(out, "  readable by   %s\n", who)
	if note := srv.PortNote(); note != "" {
		fmt.Fprintf(out, "  port          %s\n", note)
	}
	fmt.Fprintf(out, "  listening on  %s\n", strings.Join(shown, ", "))
	fmt.Fprintf(out, "  host key      %s (%s)\n", srv.Fingerprint(), srv.HostKey().Type())
	if pw := srv.Password(); pw != "" {
		fmt.Fprintf(out, "  password      %s   (this run only; any user name)\n", pw)
	}
	if len(addrs) > 0 {
		fmt.Fprintf(out, "  connect with  sftp -P %d dsftp@%s\n", port, hostForCommand(addrs[0].Addr()))
	}
	if opts.AuthorizedKeysFile == "" && opts.Authorizer == nil && !opts.Password {
		fmt.Fprintln(out, "  note          nobody can log in yet: add --authorized-keys FILE or --password")
	}
	fmt.Fprintf(out, "%s%d\n", ReadyPrefix, port)
}

// notShared says what the share leaves out, for the banner.
func notShared(srv *share.Server) string {
	var parts []string
	if !srv.ShareHidden() {
		parts = append(parts, "hidden files (names starting with \".\")")
	}
	parts = append(parts, "private keys", "symlinks leading out", "dsftp mounts")
	switch n := srv.IgnoreRules(); n {
	case 0:
	case 1:
		parts = append(parts, "1 rule in "+share.IgnoreFile)
	default:
		parts = append(parts, fmt.Sprintf("%d rules in %s", n, share.IgnoreFile))
	}
	return strings.Join(parts, ", ")
}

// hostForCommand formats an address for user@HOST on a command line.
func hostForCommand(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// writeAddrs prints the advertised addresses with their reasons, for the
// start-up banner and for later changes.
func writeAddrs(w io.Writer, as []reach.Addr) {
	if len(as) == 0 {
		fmt.Fprintln(w, "Advertised addresses: none (no network address found; use --advertise HOST:PORT)")
		return
	}
	fmt.Fprintln(w, "Advertised addresses:")
	reach.Write(w, as)
}
