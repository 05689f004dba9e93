// Package rulelines finds the lines of keys in TOML rule files: top-level
// keys and the keys of each [[rule]] table. The observer's rule files (the
// auditor's audit.toml, the device-node rules) use it to name file:line in
// their errors, since BurntSushi/toml does not expose the positions of
// decoded keys.
//
// It reads line by line, which is all these flat files need: one
// "key = value" or one [[rule]] header per line.
package rulelines

import "strings"

// Index knows where top-level keys, [[rule]] tables and their keys are.
type Index struct {
	top     map[string]int
	headers []int            // line of each [[rule]]
	keys    []map[string]int // per rule: key -> line
}

// Scan indexes src.
func Scan(src string) Index {
	ix := Index{top: map[string]int{}}
	for i, line := range strings.Split(src, "\n") {
		if isRuleHeader(line) {
			ix.headers = append(ix.headers, i+1)
			ix.keys = append(ix.keys, map[string]int{})
			continue
		}
		k := lineKey(line)
		if k == "" {
			continue
		}
		m := ix.top
		if len(ix.keys) > 0 {
			m = ix.keys[len(ix.keys)-1]
		}
		if _, seen := m[k]; !seen {
			m[k] = i + 1
		}
	}
	return ix
}

// Top gives the line of a top-level key, 1 when it is not written.
func (ix Index) Top(key string) int {
	if l, ok := ix.top[key]; ok {
		return l
	}
	return 1
}

// Rule gives the line of key in rule i (0-based), else of the rule's
// header, else 1.
func (ix Index) Rule(i int, key string) int {
	if i < 0 || i >= len(ix.headers) {
		return 1
	}
	if l, ok := ix.keys[i][key]; ok {
		return l
	}
	return ix.headers[i]
}

// RuleWithKey is the first rule that writes key, or -1.
func (ix Index) RuleWithKey(key string) int {
	for i, keys := range ix.keys {
		if _, ok := keys[key]; ok {
			return i
		}
	}
	return -1
}

// isRuleHeader reports whether a line opens a rule: [[rule]], with any
// blanks and an optional comment.
func isRuleHeader(line string) bool {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "[[") {
		return false
	}
	inner, _, ok := strings.Cut(line[2:], "]]")
	return ok && strings.Trim(strings.TrimSpace(inner), `"'`) == "rule"
}

// lineKey is the key a "key = value" line assigns, or "".
func lineKey(line string) string {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return ""
	}
	k = strings.Trim(strings.TrimSpace(k), `"'`)
	if k == "" || strings.ContainsAny(k, " \t#[") {
		return ""
	}
	return k
}
