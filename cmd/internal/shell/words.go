package shell

import (
	"errors"
	"strings"
)

// Command lines are split like a POSIX shell does, minus expansion: words
// are separated by blanks; 'single quotes' keep everything literal;
// "double quotes" keep everything but \" and \\; outside quotes a backslash
// escapes the next character. So names with spaces or quotes can be typed
// either quoted or escaped.

// partial is the state at the end of a possibly unfinished line.
type partial struct {
	words []string // complete words before the last one
	cur   string   // the last word so far, unescaped
	raw   int      // runes the last word takes in the line as typed
	quote rune     // open quote at the end: 0, '\'' or '"'
}

var errOpenQuote = errors.New("unterminated quote")

// split parses a complete line.
func split(line string) ([]string, error) {
	p := parse(line)
	if p.quote != 0 {
		return nil, errOpenQuote
	}
	if p.raw > 0 {
		p.words = append(p.words, p.cur)
	}
	return p.words, nil
}

// parse scans line and reports its words and the state of the last one.
func parse(line string) partial {
	var p partial
	var b strings.Builder
	inWord := false
	escaped := false
	start := 0
	rs := []rune(line)
	for i, r := range rs {
		switch {
		case escaped:
			b.WriteRune(r)
			escaped = false
		case p.quote == '\'':
			if r == '\'' {
				p.quote = 0
			} else {
				b.WriteRune(r)
			}
		case p.quote == '"':
			switch r {
			case '"':
				p.quote = 0
			case '\\':
				if i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\') {
					escaped = true
				} else {
					b.WriteRune(r)
				}
			default:
				b.WriteRune(r)
			}
		case r == ' ' || r == '\t':
			if inWord {
				p.words = append(p.words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			if !inWord {
				inWord, start = true, i
			}
			switch r {
			case '\\':
				escaped = true
			case '\'', '"':
				p.quote = r
			default:
				b.WriteRune(r)
			}
		}
	}
	if escaped && p.quote == 0 {
		// A trailing lone backslash stands for itself.
		b.WriteRune('\\')
	}
	if inWord {
		p.cur = b.String()
		p.raw = len(rs) - start
	}
	return p
}

// escape renders s so that, appended to a word in quote state q, it reads
// back as s.
func escape(s string, q rune) string {
	var b strings.Builder
	for _, r := range s {
		switch q {
		case '\'':
			if r == '\'' {
				b.WriteString(`'\''`)
				continue
			}
		case '"':
			if r == '"' || r == '\\' {
				b.WriteRune('\\')
			}
		default:
			if strings.ContainsRune(" \t\\'\"", r) {
				b.WriteRune('\\')
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quote renders a whole word for display in messages and completions.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\\'\"") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
