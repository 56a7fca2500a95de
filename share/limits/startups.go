package limits

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Startups is OpenSSH's MaxStartups start:rate:full for connections that
// have not logged in yet: below Start every one is taken; from Start on a
// new one is dropped with probability Rate percent, rising linearly to 100%
// at Full. Random early drop means a flood that fills the pool cannot keep
// everyone else out: a real client retrying gets in with fair odds, while
// the flood's own slots free up (the server cuts silent connections after
// a grace, and they give way to newer ones from their source, silent.go).
type Startups struct {
	Start, Rate, Full int
}

// DefaultStartups is 16:30:64.
var DefaultStartups = Startups{Start: 16, Rate: 30, Full: 64}

// String formats s as start:rate:full.
func (s Startups) String() string { return fmt.Sprintf("%d:%d:%d", s.Start, s.Rate, s.Full) }

// ParseStartups reads "start:rate:full" or a single number (no early drop
// below it, as OpenSSH reads one).
func ParseStartups(v string) (Startups, error) {
	parts := strings.Split(v, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return Startups{}, fmt.Errorf("max startups %q: want start:rate:full like 16:30:64, or one number", v)
		}
		nums[i] = n
	}
	var s Startups
	switch len(nums) {
	case 1:
		s = Startups{Start: nums[0], Rate: 100, Full: nums[0]}
	case 3:
		s = Startups{Start: nums[0], Rate: nums[1], Full: nums[2]}
	default:
		return Startups{}, fmt.Errorf("max startups %q: want start:rate:full like 16:30:64, or one number", v)
	}
	if err := s.check(); err != nil {
		return Startups{}, fmt.Errorf("max startups %q: %w", v, err)
	}
	return s, nil
}

func (s Startups) check() error {
	switch {
	case s.Full < 1:
		return fmt.Errorf("full must be at least 1")
	case s.Start < 1 || s.Start > s.Full:
		return fmt.Errorf("start must be between 1 and full (%d)", s.Full)
	case s.Rate < 1 || s.Rate > 100:
		return fmt.Errorf("rate must be a percentage between 1 and 100")
	}
	return nil
}

// drop decides whether a new connection is refused while n others are
// logging in.
func (s Startups) drop(n int) bool {
	switch {
	case n >= s.Full:
		return true
	case n < s.Start:
		return false
	}
	// OpenSSH's formula: rate at start, 100% at full.
	p := s.Rate + (100-s.Rate)*(n-s.Start)/(s.Full-s.Start)
	return rand.IntN(100) < p
}

// Set parses v (see ParseStartups), so a *Startups is a command-line flag
// value (flag.Value, pflag.Value).
func (s *Startups) Set(v string) error {
	st, err := ParseStartups(v)
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// Type names the flag's form in help output.
func (s *Startups) Type() string { return "start:rate:full" }
