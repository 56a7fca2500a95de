package instance

import (
	"errors"
	"fmt"
	"strings"
)

// Discovery methods, as --discovery names them.
const (
	MethodDiscord = "discord"
	MethodLAN     = "lan"
	MethodOff     = "off"
)

// Methods are the ways a process finds peers.
type Methods struct {
	Discord, LAN bool
}

// ParseMethods parses a --discovery value: discord, lan or off, or a
// comma list such as discord,lan (case and spaces do not matter).
func ParseMethods(v string) (Methods, error) {
	var m Methods
	off := false
	for _, w := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case MethodDiscord:
			m.Discord = true
		case MethodLAN:
			m.LAN = true
		case MethodOff:
			off = true
		default:
			return Methods{}, fmt.Errorf("--discovery %q: want discord, lan or off, or a comma list such as discord,lan", v)
		}
	}
	if off && (m.Discord || m.LAN) {
		return Methods{}, errors.New("--discovery: off cannot be combined with other methods")
	}
	return m, nil
}
