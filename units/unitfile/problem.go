package unitfile

import (
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a Problem stops a unit from loading.
type Severity int

const (
	// SeverityError makes the unit's LoadState bad-setting.
	SeverityError Severity = iota
	// SeverityWarning is reported but the unit loads (a missing executable,
	// a dependency that cannot be checked here).
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one thing wrong in a unit file, with its place.
type Problem struct {
	File     string // path of the file as read; "" for problems of no file
	Line     int    // 1-based; 0 when unknown
	Column   int    // 1-based; 0 when unknown
	Section  string // "service", "unit.condition"; "" when not in a section
	Key      string // "restart-sec"; "" for problems of a whole section or file
	Msg      string
	Severity Severity
}

// Error renders the problem as
// "units/foo.service:12:3: [service] restart-secs: unknown key (did you mean 'restart-sec'?)";
// warnings say "warning:" after the place.
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
		}
		b.WriteString(": ")
	}
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.Section != "" {
		b.WriteString("[" + p.Section + "] ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// LoadError is the error of a unit that did not load: every error-level
// problem found in its files, in file and line order.
type LoadError struct {
	Unit     string
	Problems []Problem
}

func (e *LoadError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].Error()
	}
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%s: %d problems:", e.Unit, len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any problem is an error, not a warning.
func HasErrors(problems []Problem) bool {
	for _, p := range problems {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours cost one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	var rows [3][65]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Nearest gives the candidate closest to word, if it is close enough to be
// a plausible typo: one edit for short words, two up to ten letters, three
// beyond. initctl uses it for its own commands and options too.
func Nearest(word string, candidates []string) (string, bool) {
	limit := 3
	switch {
	case len(word) <= 4:
		limit = 1
	case len(word) <= 10:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD <= limit
}

func unknownKeyMessage(key string, candidates []string) string {
	if s, ok := Nearest(key, candidates); ok {
		return fmt.Sprintf("unknown key (did you mean '%s'?)", s)
	}
	return "unknown key"
}
