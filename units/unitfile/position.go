package unitfile

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// position is a 1-based line and column (in characters) in a source file.
type position struct{ line, col int }

// keyIndex maps a key's path (its parts joined by pathSep) to where it is
// first written: a table header, a key, or a key of an inline table.
//
// BurntSushi/toml records positions but does not expose them (v1.6), so
// this small scanner walks the source again. It runs only for files that
// toml already accepted and only when a problem needs a place, and it never
// fails: on anything unexpected it stops, and lookups fall back to the
// nearest enclosing path that was found.
type keyIndex map[string]position

const pathSep = "\x1f"

func joinPath(parts ...string) string { return strings.Join(parts, pathSep) }

type keyScanner struct {
	src       string
	i         int
	line      int
	lineStart int
	index     keyIndex
}

func indexKeys(src string) keyIndex {
	s := &keyScanner{src: src, line: 1, index: keyIndex{}}
	s.document()
	return s.index
}

func (s *keyScanner) pos() position {
	return position{line: s.line, col: utf8.RuneCountInString(s.src[s.lineStart:s.i]) + 1}
}

func (s *keyScanner) eof() bool { return s.i >= len(s.src) }

func (s *keyScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *keyScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.lineStart = s.i + 1
	}
	s.i++
}

// skipSpace skips blanks, and with newlines also line ends and comments.
func (s *keyScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		case c == '\n' && newlines:
			s.advance()
		default:
			return
		}
	}
}

// record notes where each prefix of table+key starts: the table's parts
// at at, the key's parts at their own places.
func (s *keyScanner) record(table []string, at position, key []string, places []position) {
	full := append(append([]string(nil), table...), key...)
	for n := 1; n <= len(full); n++ {
		k := joinPath(full[:n]...)
		if _, ok := s.index[k]; ok {
			continue
		}
		p := at
		if i := n - 1 - len(table); i >= 0 && i < len(places) {
			p = places[i]
		}
		s.index[k] = p
	}
}

func (s *keyScanner) document() {
	var table []string
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			p := s.pos()
			s.advance()
			if s.peek() == '[' {
				s.advance()
			}
			s.skipSpace(false)
			key, _, ok := s.key()
			if !ok {
				return
			}
			table = key
			s.record(table, p, nil, nil)
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.advance()
			}
		} else {
			key, places, ok := s.key()
			if !ok {
				return
			}
			full := append(append([]string(nil), table...), key...)
			s.record(table, places[0], key, places)
			s.skipSpace(false)
			if s.peek() != '=' {
				return
			}
			s.advance()
			s.skipSpace(false)
			s.value(full)
		}
		if s.i == start {
			return
		}
	}
}

// key reads a dotted key of bare and quoted parts, with where each part
// starts.
func (s *keyScanner) key() ([]string, []position, bool) {
	var parts []string
	var places []position
	for {
		s.skipSpace(false)
		places = append(places, s.pos())
		switch c := s.peek(); {
		case c == '"':
			start := s.i
			s.basicString()
			raw := s.src[start:s.i]
			if u, err := strconv.Unquote(raw); err == nil {
				parts = append(parts, u)
			} else {
				parts = append(parts, strings.Trim(raw, `"`))
			}
		case c == '\'':
			start := s.i
			s.literalString()
			parts = append(parts, strings.Trim(s.src[start:s.i], "'"))
		default:
			start := s.i
			for !s.eof() {
				c := s.peek()
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					break
				}
				s.advance()
			}
			if s.i == start {
				return nil, nil, false
			}
			parts = append(parts, s.src[start:s.i])
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return parts, places, true
		}
		s.advance()
	}
}

func (s *keyScanner) basicString() {
	s.advance() // opening quote
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	s.advance()
}

func (s *keyScanner) literalString() {
	s.advance()
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.advance()
	}
	s.advance()
}

func (s *keyScanner) multiline(delim string) {
	for range 3 {
		s.advance()
	}
	for !s.eof() {
		if strings.HasPrefix(s.src[s.i:], delim) {
			for range 3 {
				s.advance()
			}
			// Up to two more quotes belong to the content.
			for n := 0; n < 2 && s.peek() == delim[0]; n++ {
				s.advance()
			}
			return
		}
		if delim[0] == '"' && s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
}

// value skips one value; keys of inline tables are recorded under path.
func (s *keyScanner) value(path []string) {
	switch rest := s.src[s.i:]; {
	case strings.HasPrefix(rest, `"""`):
		s.multiline(`"""`)
	case strings.HasPrefix(rest, `'''`):
		s.multiline(`'''`)
	case strings.HasPrefix(rest, `"`):
		s.basicString()
	case strings.HasPrefix(rest, `'`):
		s.literalString()
	case strings.HasPrefix(rest, `[`):
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.advance()
				return
			}
			start := s.i
			s.value(path)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.i == start {
				return
			}
		}
	case strings.HasPrefix(rest, `{`):
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == '}' {
				s.advance()
				return
			}
			key, places, ok := s.key()
			if !ok {
				return
			}
			full := append(append([]string(nil), path...), key...)
			s.record(path, places[0], key, places)
			s.skipSpace(false)
			if s.peek() != '=' {
				return
			}
			s.advance()
			s.skipSpace(false)
			s.value(full)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			}
		}
	default:
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.advance()
		}
	}
}

// lookup gives the position of path, or of its nearest recorded ancestor.
func (ix keyIndex) lookup(path ...string) (position, bool) {
	for n := len(path); n > 0; n-- {
		if p, ok := ix[joinPath(path[:n]...)]; ok {
			return p, true
		}
	}
	return position{}, false
}
