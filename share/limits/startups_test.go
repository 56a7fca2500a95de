package limits

import (
	"strings"
	"testing"
)

// TestParseStartups: start:rate:full, or one number (no early drop below
// it); anything else is an error that shows the form wanted.
func TestParseStartups(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Startups
	}{
		{"16:30:64", Startups{16, 30, 64}},
		{" 1 : 100 : 1 ", Startups{1, 100, 1}},
		{"10", Startups{10, 100, 10}},
	} {
		got, err := ParseStartups(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseStartups(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, why string }{
		{"", "want start:rate:full"},
		{"a:b:c", "want start:rate:full"},
		{"16:30", "want start:rate:full"},
		{"-1", "want start:rate:full"},
		{"0", "full must be at least 1"},
		{"65:30:64", "start must be between 1 and full (64)"},
		{"0:30:64", "start must be between 1 and full (64)"},
		{"16:0:64", "rate must be a percentage"},
		{"16:101:64", "rate must be a percentage"},
	} {
		_, err := ParseStartups(c.in)
		if err == nil || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("ParseStartups(%q): %v; want an error naming it and saying %q", c.in, err, c.why)
		}
	}
}

// TestStartupsFlag: a *Startups is a flag value that prints what it
// parsed and keeps its value on a bad one.
func TestStartupsFlag(t *testing.T) {
	s := DefaultStartups
	if s.String() != "16:30:64" || s.Type() != "start:rate:full" {
		t.Errorf("default %q, type %q", s.String(), s.Type())
	}
	if err := s.Set("8:50:32"); err != nil || s != (Startups{8, 50, 32}) {
		t.Errorf("Set: %v, %v", s, err)
	}
	if err := s.Set("8:50"); err == nil || s != (Startups{8, 50, 32}) {
		t.Errorf("Set of a bad value: %v, %v; want an error and the value kept", s, err)
	}
}

// TestEarlyDrop: below start nothing is dropped, at full everything;
// from start the odds rise from rate to 100% (OpenSSH's formula). The
// bounds are wide: 10,000 draws land within 2 points of the odds.
func TestEarlyDrop(t *testing.T) {
	s := Startups{Start: 16, Rate: 30, Full: 64}
	const draws = 10000
	for _, c := range []struct{ n, lo, hi int }{
		{0, 0, 0},
		{15, 0, 0},
		{16, 25, 35},
		{40, 60, 70}, // 30 + 70×24/48 = 65
		{63, 93, 100},
		{64, 100, 100},
		{100, 100, 100},
	} {
		dropped := 0
		for range draws {
			if s.drop(c.n) {
				dropped++
			}
		}
		if pct := dropped * 100 / draws; pct < c.lo || pct > c.hi {
			t.Errorf("with %d logging in: %d%% dropped; want %d–%d%%", c.n, pct, c.lo, c.hi)
		}
	}
}
