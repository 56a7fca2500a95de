package reach

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func ifaces(pairs ...string) func() ([]Interface, error) {
	return func() ([]Interface, error) {
		var out []Interface
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, Interface{Name: pairs[i], Addr: netip.MustParseAddr(pairs[i+1])})
		}
		return out, nil
	}
}

func TestSelect(t *testing.T) {
	got, err := Select(Options{
		Port:      2222,
		External:  netip.MustParseAddrPort("198.20.113.1:2222"),
		Router:    "192.168.77.1",
		Advertise: []string{"vps.example.org:22", "198.20.113.1:2222"},
		Interfaces: ifaces(
			"wlan0", "192.168.77.2",
			"wlan0", "fe80::1",
			"wlan0", "2001:470:1::5",
			"wlan0", "fd12::5",
			"eth0", "10.0.0.7",
			"tun0", "100.101.102.103",
		),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"vps.example.org:22",
		"198.20.113.1:2222", // --advertise given it first: kept once, manual reason
		"[2001:470:1::5]:2222",
		"10.0.0.7:2222",
		"100.101.102.103:2222",
		"192.168.77.2:2222",
	}
	if !reflect.DeepEqual(Strings(got), want) {
		t.Fatalf("Select = %v\nwant %v", Strings(got), want)
	}
	for _, a := range got {
		if a.Reason == "" {
			t.Errorf("%s has no reason", a.Addr)
		}
	}
	if got[1].Kind != Manual || got[2].Kind != IPv6 || got[5].Kind != LAN {
		t.Errorf("kinds: %v", got)
	}
	if !strings.Contains(got[5].Reason, "wlan0") {
		t.Errorf("LAN reason %q should name the interface", got[5].Reason)
	}
}

func TestSelectExternalReason(t *testing.T) {
	got, err := Select(Options{Port: 2222, External: netip.MustParseAddrPort("198.20.113.1:4000"), Router: "192.168.77.1", Interfaces: ifaces()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != External || !strings.Contains(got[0].Reason, "UPnP") || !strings.Contains(got[0].Reason, "192.168.77.1") {
		t.Fatalf("Select = %v", got)
	}
}

func TestParseAdvertise(t *testing.T) {
	for in, want := range map[string]string{
		"example.org:2222":   "example.org:2222",
		"Example.ORG:2222":   "example.org:2222",
		"198.20.113.9:22":    "198.20.113.9:22",
		"[2001:db8::1]:2222": "[2001:db8::1]:2222",
		" host-1.lan:65535 ": "host-1.lan:65535",
	} {
		got, err := ParseAdvertise(in)
		if err != nil || got != want {
			t.Errorf("ParseAdvertise(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"example.org", "example.org:0", "example.org:70000", ":2222", "exa_mple.org:22", "[fe80::1%eth0]:22", "2001:db8::1:22", "-bad.org:22"} {
		if got, err := ParseAdvertise(in); err == nil {
			t.Errorf("ParseAdvertise(%q) = %q, want an error", in, got)
		} else if !strings.Contains(err.Error(), "--advertise") {
			t.Errorf("error %q should name the flag", err)
		}
	}
}
