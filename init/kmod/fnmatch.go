package kmod

// fnmatch reports whether name matches the shell pattern, with the
// semantics of fnmatch(3) without flags, as libkmod uses it for
// modules.alias: '*' matches any run of bytes (including '/'), '?' one
// byte, "[...]" a set with ranges and '!' or '^' negation, and '\' quotes
// the next byte. A malformed set ("[abc" with no ']') matches a literal '['.
//
// The matcher backtracks only to the last '*', so it runs in
// O(len(pattern)*len(name)) even for hostile patterns.
func fnmatch(pattern, name string) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if matched, width, ok := matchSet(pattern[p:], name[n]); ok {
					if matched {
						p += width
						n++
						continue
					}
				} else if name[n] == '[' {
					p++
					n++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					if pattern[p+1] == name[n] {
						p += 2
						n++
						continue
					}
				} else if name[n] == '\\' {
					p++
					n++
					continue
				}
			default:
				if pattern[p] == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchSet matches one byte against the set at the start of pattern
// (pattern[0] == '['). ok is false when the set is not closed; width is the
// length of the set in the pattern.
func matchSet(pattern string, ch byte) (matched bool, width int, ok bool) {
	i := 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		lo := pattern[i]
		if lo == '\\' && i+1 < len(pattern) {
			i++
			lo = pattern[i]
		}
		i++
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			hi = pattern[i+1]
			if hi == '\\' && i+2 < len(pattern) {
				hi = pattern[i+2]
				i++
			}
			i += 2
		}
		if lo <= ch && ch <= hi {
			matched = true
		}
	}
	return false, 0, false
}
