package observer

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Op is how a Term compares an attribute with its values.
type Op string

// The comparison operators a filter term may use.
const (
	OpEq  Op = "="  // equal to one of the values; values with * ? [ are globs
	OpNe  Op = "!=" // equal to none of the values
	OpLt  Op = "<"  // numeric
	OpLe  Op = "<="
	OpGt  Op = ">"
	OpGe  Op = ">="
	OpHas Op = "?" // the attribute is present (values ignored)
)

// Term is one condition of a Filter. Key "source" and "kind" address the
// event's source and kind; any other key addresses an attribute.
type Term struct {
	Key    string   `json:"key"`
	Op     Op       `json:"op"`
	Values []string `json:"values,omitempty"`

	num   float64  // parsed numeric operand for the ordering ops
	glob  []bool   // which Values are globs, set by Compile
	pat   []string // the globs in path.Match's syntax, set by Compile
	field field    // what Key addresses, set by Compile
}

// field is what a term's key addresses, resolved once by Compile so that
// matching does not compare key strings for every event.
type field uint8

const (
	fieldUnresolved field = iota
	fieldAttr
	fieldSource
	fieldKind
)

func fieldOf(key string) field {
	switch key {
	case "source":
		return fieldSource
	case "kind":
		return fieldKind
	}
	return fieldAttr
}

// Filter matches an event when every term holds. The zero Filter matches
// every event.
type Filter struct {
	Terms []Term `json:"terms,omitempty"`
}

// Match reports whether the event satisfies every term.
func (f *Filter) Match(e *Event) bool {
	for i := range f.Terms {
		if !f.Terms[i].match(e) {
			return false
		}
	}
	return true
}

func (t *Term) value(e *Event) (string, bool) {
	f := t.field
	if f == fieldUnresolved {
		f = fieldOf(t.Key)
	}
	switch f {
	case fieldSource:
		return e.Source, true
	case fieldKind:
		return e.Kind, true
	}
	v, ok := e.Attrs[t.Key]
	return v, ok
}

func (t *Term) match(e *Event) bool {
	v, ok := t.value(e)
	switch t.Op {
	case OpHas:
		return ok
	case OpEq:
		return ok && t.anyMatches(v)
	case OpNe:
		return !ok || !t.anyMatches(v)
	}
	if !ok {
		return false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return false
	}
	switch t.Op {
	case OpLt:
		return n < t.num
	case OpLe:
		return n <= t.num
	case OpGt:
		return n > t.num
	case OpGe:
		return n >= t.num
	}
	return false
}

func (t *Term) anyMatches(v string) bool {
	// Compile notes which values are globs; a term changed since (or
	// never compiled) is checked value by value.
	compiled := len(t.glob) == len(t.Values) && len(t.pat) == len(t.Values)
	for i, p := range t.Values {
		if compiled && t.glob[i] {
			if ok, _ := path.Match(t.pat[i], v); ok {
				return true
			}
		} else if !compiled && isGlob(p) {
			if ok, _ := path.Match(shellGlob(p), v); ok {
				return true
			}
		} else if p == v {
			return true
		}
	}
	return false
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// shellGlob turns the shell's (and udev's) negated class "[!...]" into
// path.Match's "[^...]"; everything else is the same syntax.
func shellGlob(p string) string {
	if !strings.Contains(p, "[!") {
		return p
	}
	b := []byte(p)
	inClass := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++ // the next byte is literal
		case !inClass && b[i] == '[':
			inClass = true
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
				i++
			}
		case inClass && b[i] == ']':
			inClass = false
		}
	}
	return string(b)
}

// Compile checks every term and prepares numeric operands and globs. It
// must be called on filters built by hand or decoded from JSON before they
// are used (Register does it on its own copy).
func (f *Filter) Compile() error {
	for i := range f.Terms {
		t := &f.Terms[i]
		if t.Key == "" {
			return fmt.Errorf("filter term %d: empty key", i+1)
		}
		if bad := strings.IndexFunc(t.Key, func(r rune) bool { return !isKeyRune(r) }); bad >= 0 {
			return fmt.Errorf("filter term %d: key %q: character %q not allowed (letters, digits and _ . : / - only)", i+1, t.Key, t.Key[bad:][:1])
		}
		t.glob, t.pat = nil, nil
		t.field = fieldOf(t.Key)
		switch t.Op {
		case OpEq, OpNe:
			if len(t.Values) == 0 {
				return fmt.Errorf("filter term %q: %s needs a value", t.Key, t.Op)
			}
			t.glob = make([]bool, len(t.Values))
			t.pat = make([]string, len(t.Values))
			for j, v := range t.Values {
				if isGlob(v) {
					t.pat[j] = shellGlob(v)
					if _, err := path.Match(t.pat[j], ""); err != nil {
						return fmt.Errorf("filter term %q: bad glob %q", t.Key, v)
					}
					t.glob[j] = true
				}
			}
		case OpLt, OpLe, OpGt, OpGe:
			if len(t.Values) != 1 {
				return fmt.Errorf("filter term %q: %s takes exactly one number", t.Key, t.Op)
			}
			n, err := strconv.ParseFloat(t.Values[0], 64)
			if err != nil {
				return fmt.Errorf("filter term %q: %s needs a number, got %q", t.Key, t.Op, t.Values[0])
			}
			t.num = n
		case OpHas:
		default:
			return fmt.Errorf("filter term %q: unknown operator %q", t.Key, t.Op)
		}
	}
	return nil
}

func isKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '.' || r == ':' || r == '/' || r == '-'
}

// clone copies the filter deeply enough that the caller's slices are not
// shared.
func (f Filter) clone() Filter {
	terms := make([]Term, len(f.Terms))
	for i, t := range f.Terms {
		t.Values = append([]string(nil), t.Values...)
		t.glob = append([]bool(nil), t.glob...)
		t.pat = append([]string(nil), t.pat...)
		terms[i] = t
	}
	return Filter{Terms: terms}
}

// ParseFilter reads the text form used by `initctl observe` and guests:
// space-separated terms such as
//
//	source=uevent kind=add SUBSYSTEM=block DEVNAME=vd* ACTION!=remove SEQNUM>=100 MODALIAS? kind=add|remove
//
// "|" separates alternatives; a value with * ? or [ is a glob in the syntax
// of path.Match (so * does not cross "/"), where [!...] negates a class as
// in the shell and in udev rules, and \ quotes the next character.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	for _, word := range strings.Fields(s) {
		t, err := parseTerm(word)
		if err != nil {
			return Filter{}, err
		}
		f.Terms = append(f.Terms, t)
	}
	return f, f.Compile()
}

func parseTerm(word string) (Term, error) {
	if strings.HasSuffix(word, "?") && !strings.ContainsAny(word, "=<>!") {
		return Term{Key: strings.TrimSuffix(word, "?"), Op: OpHas}, nil
	}
	i := strings.IndexAny(word, "=<>!")
	if i <= 0 {
		return Term{}, fmt.Errorf("filter term %q: expected KEY=VALUE, KEY!=VALUE, KEY<N, KEY>N or KEY?", word)
	}
	key, rest := word[:i], word[i:]
	var op Op
	for _, candidate := range []Op{OpNe, OpLe, OpGe, OpEq, OpLt, OpGt} {
		if strings.HasPrefix(rest, string(candidate)) {
			op = candidate
			break
		}
	}
	if op == "" {
		return Term{}, fmt.Errorf("filter term %q: unknown operator", word)
	}
	val := rest[len(op):]
	return Term{Key: key, Op: op, Values: strings.Split(val, "|")}, nil
}

// String renders the filter in the text form ParseFilter reads.
func (f Filter) String() string {
	parts := make([]string, len(f.Terms))
	for i, t := range f.Terms {
		if t.Op == OpHas {
			parts[i] = t.Key + "?"
			continue
		}
		parts[i] = t.Key + string(t.Op) + strings.Join(t.Values, "|")
	}
	return strings.Join(parts, " ")
}
