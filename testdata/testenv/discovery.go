//go:build linux

package testenv

import (
	"os"
	"strings"
)

// withDiscoveryDefault keeps child dsftp processes from announcing on the
// host's network: without a Discord token dsftp defaults to LAN discovery
// on every interface, which tests must not do (network traffic only to
// loopback or namespaces a test made) and which would let concurrent tests
// find each other. Unless the test sets DSFTP_DISCOVERY itself or gives a
// Discord token, the child gets DSFTP_DISCOVERY=off; tests of LAN
// discovery pass --discovery lan with --lan-interface lo, or run inside
// their own namespaces.
func withDiscoveryDefault(env []string) []string {
	token := os.Getenv("DSFTP_DISCORD_TOKEN")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "DSFTP_DISCOVERY":
			return env
		case "DSFTP_DISCORD_TOKEN":
			token = v
		}
	}
	if strings.TrimSpace(token) != "" {
		return env
	}
	return append(env, "DSFTP_DISCOVERY=off")
}

// withSTUNDefault keeps child dsftp processes from asking public STUN
// servers for their address (network traffic only to loopback or to
// namespaces a test made): unless the test sets DSFTP_STUN itself, the
// child gets DSFTP_STUN=none. Tests of punching pass --stun with the
// lab's servers (Internet.StartTURN).
func withSTUNDefault(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "DSFTP_STUN=") {
			return env
		}
	}
	return append(env, "DSFTP_STUN=none")
}
