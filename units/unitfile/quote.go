package unitfile

import (
	"fmt"
	"strings"
)

// QuoteString writes s as a TOML basic string, for the unit files and
// drop-ins Vigil writes itself (set-property, transient units, the fstab
// generator). strconv.Quote would not do: its \a, \v and \x escapes are
// not TOML, and the loader would refuse the file. Bytes that are not UTF-8
// come out as U+FFFD; callers that must not change a value check first.
func QuoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
