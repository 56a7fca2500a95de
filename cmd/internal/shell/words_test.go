package shell

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for line, want := range map[string][]string{
		`get a b`:                   {"get", "a", "b"},
		`get "my file.txt"`:         {"get", "my file.txt"},
		`get my\ file.txt  x`:       {"get", "my file.txt", "x"},
		`cd 'it'\''s'`:              {"cd", "it's"},
		`get "say \"hi\"" '\'`:      {"get", `say "hi"`, `\`},
		`  ls   -l  `:               {"ls", "-l"},
		`get a"b c"d`:               {"get", "ab cd"},
		`get "back\slash"`:          {"get", `back\slash`},
		``:                          nil,
		`connect "peer with space"`: {"connect", "peer with space"},
	} {
		got, err := split(line)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("split(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	if _, err := split(`get "open`); err == nil {
		t.Errorf("unterminated quote accepted")
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, name := range []string{"plain", "with space", `it's`, `a "q" b`, `back\slash`, "tab\there"} {
		for _, q := range []rune{0, '\'', '"'} {
			line := "get "
			if q != 0 {
				line += string(q)
			}
			line += escape(name, q)
			if q != 0 {
				line += string(q)
			}
			got, err := split(line)
			if err != nil || len(got) != 2 || got[1] != name {
				t.Errorf("escape(%q, %q) → %q splits to %q, %v", name, q, line, got, err)
			}
		}
		if got, _ := split("x " + quote(name)); len(got) != 2 || got[1] != name {
			t.Errorf("quote(%q) splits to %q", name, got)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"alice", "bob", "carol-laptop"}
	for in, want := range map[string]string{"alcie": "alice", "Bob": "bob", "carol": "carol-laptop", "zzzzzzzz": ""} {
		got, ok := Closest(in, names)
		if (want == "") == ok || got != want && ok {
			t.Errorf("Closest(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
