package exec

import (
	"strings"
)

// ExpandArgv expands environment variables in argv with systemd's rules:
//
//   - a word that is exactly $NAME is replaced by NAME's value split at
//     whitespace: zero or more words (zero when NAME is unset or empty);
//   - ${NAME} anywhere in a word is replaced by the exact value, never
//     splitting; ${NAME:-default} uses default when NAME is unset or empty,
//     ${NAME:+alternate} uses alternate when it is set and non-empty;
//   - $$ is a literal $;
//   - any other $ (e.g. $NAME inside a longer word) is kept as written.
//
// env holds KEY=VALUE strings; the last definition of a key wins.
func ExpandArgv(argv, env []string) []string {
	vars := envMap(env)
	out := make([]string, 0, len(argv))
	for _, word := range argv {
		if name, ok := strings.CutPrefix(word, "$"); ok && validEnvName(name) {
			out = append(out, strings.Fields(vars[name])...)
			continue
		}
		out = append(out, expandWord(word, vars))
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m[k] = v
		}
	}
	return m
}

// expandWord replaces ${NAME}, ${NAME:-x}, ${NAME:+x} and $$ in one word.
func expandWord(word string, vars map[string]string) string {
	if !strings.Contains(word, "$") {
		return word
	}
	var b strings.Builder
	for i := 0; i < len(word); {
		c := word[i]
		if c != '$' || i+1 >= len(word) {
			b.WriteByte(c)
			i++
			continue
		}
		switch word[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
			end := strings.IndexByte(word[i+2:], '}')
			if end < 0 {
				break
			}
			expr := word[i+2 : i+2+end]
			if val, ok := expandBraced(expr, vars); ok {
				b.WriteString(val)
				i += 2 + end + 1
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// expandBraced evaluates the inside of ${...}; ok is false when it is not a
// valid expression, in which case the text is kept literally.
func expandBraced(expr string, vars map[string]string) (string, bool) {
	name, op, arg := expr, "", ""
	if i := strings.IndexByte(expr, ':'); i >= 0 {
		name, op, arg = expr[:i], expr[i:min(i+2, len(expr))], expr[min(i+2, len(expr)):]
	}
	if !validEnvName(name) {
		return "", false
	}
	val := vars[name]
	switch op {
	case "":
		return val, true
	case ":-":
		if val == "" {
			return arg, true
		}
		return val, true
	case ":+":
		if val != "" {
			return arg, true
		}
		return "", true
	}
	return "", false
}

// validEnvName accepts what systemd accepts as a variable name in argv:
// letters, digits and underscores, not starting with a digit.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
