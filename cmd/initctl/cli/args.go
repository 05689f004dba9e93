package cli

import (
	"fmt"
	"strconv"
	"strings"

	"vigil/units/unitfile"
)

// flagSpec declares one option. Value is the placeholder of the option's
// argument ("" for a switch).
type flagSpec struct {
	Long  string
	Short byte
	Value string
	Help  string
	// Repeat collects every occurrence (and splits comma lists) instead of
	// keeping the last one.
	Repeat bool
}

// parsed is a command line after option parsing. Options may appear before,
// between or after the positional arguments, as systemctl allows; "--" ends
// the options.
type parsed struct {
	values map[string][]string
	set    map[string]bool
	args   []string
}

func (p *parsed) has(long string) bool { return p.set[long] }

func (p *parsed) str(long, def string) string {
	if v := p.values[long]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

func (p *parsed) list(long string) []string { return p.values[long] }

func (p *parsed) int(long string, def int) (int, error) {
	v := p.str(long, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--%s: %q is not a non-negative number", long, v)
	}
	return n, nil
}

// parseArgs splits args by the given option specs.
func parseArgs(args []string, specs []flagSpec) (*parsed, error) {
	p := &parsed{values: map[string][]string{}, set: map[string]bool{}}
	byLong := map[string]*flagSpec{}
	byShort := map[byte]*flagSpec{}
	for i := range specs {
		s := &specs[i]
		byLong[s.Long] = s
		if s.Short != 0 {
			byShort[s.Short] = s
		}
	}
	record := func(s *flagSpec, v string) {
		p.set[s.Long] = true
		if s.Value == "" {
			return
		}
		if s.Repeat {
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					p.values[s.Long] = append(p.values[s.Long], part)
				}
			}
			return
		}
		p.values[s.Long] = append(p.values[s.Long], v)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			p.args = append(p.args, args[i+1:]...)
			return p, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			s, ok := byLong[name]
			if !ok {
				return nil, fmt.Errorf("unknown option --%s%s", name, suggest(name, longNames(specs), "--"))
			}
			if s.Value == "" {
				if hasVal {
					b, err := strconv.ParseBool(val)
					if err != nil {
						return nil, fmt.Errorf("option --%s takes no value", name)
					}
					if b {
						record(s, "")
					} else {
						delete(p.set, s.Long)
					}
				} else {
					record(s, "")
				}
				continue
			}
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option --%s needs a value (%s)", name, s.Value)
				}
				i++
				val = args[i]
			}
			record(s, val)
		case len(a) > 1 && a[0] == '-' && !isNumber(a):
			// A cluster of short options: -aq, -n5, -n 5, -p Id,Names.
			for j := 1; j < len(a); j++ {
				s, ok := byShort[a[j]]
				if !ok {
					return nil, fmt.Errorf("unknown option -%c", a[j])
				}
				if s.Value == "" {
					record(s, "")
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("option -%c needs a value (%s)", a[j], s.Value)
					}
					i++
					val = args[i]
				}
				record(s, val)
				break
			}
		default:
			p.args = append(p.args, a)
		}
	}
	return p, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func longNames(specs []flagSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Long
	}
	return out
}

// suggest returns " (did you mean PREFIXx?)" for the nearest candidate
// within a small edit distance, or "".
func suggest(word string, candidates []string, prefix string) string {
	best, ok := unitfile.Nearest(word, candidates)
	if !ok || best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean '%s%s'?)", prefix, best)
}
