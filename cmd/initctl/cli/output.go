package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// terminal reports whether w is a terminal, and its width when known.
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false, 0
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return false, 0
	}
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return true, 80
	}
	return true, int(ws.Col)
}

// printJSON writes v as indented JSON: the stable form for scripts.
func (e *env) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: encode output: %v\n", e.program, err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "%s\n", b)
	return exitOK
}

// printJSONLine writes v as one compact line, for streams.
func (e *env) printJSONLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: encode output: %v\n", e.program, err)
		return
	}
	fmt.Fprintf(e.stdout, "%s\n", b)
}

// ANSI colors, used only on terminals.
const (
	colorRed    = "\x1b[0;1;31m"
	colorGreen  = "\x1b[0;1;32m"
	colorYellow = "\x1b[0;1;33m"
	colorBold   = "\x1b[0;1;39m"
	colorOff    = "\x1b[0m"
)

func (e *env) color(c, s string) string {
	if !e.tty || s == "" {
		return s
	}
	return c + s + colorOff
}

// table is rows of cells under a header. On a terminal it is aligned with
// a header and the last column is cut to the screen width; otherwise every
// row is its cells separated by single spaces (empty cells as "-"), no
// header: stable for scripts, with only the last column holding spaces.
type table struct {
	header []string
	rows   [][]string
	// marks are per-row prefixes shown in a two-character gutter on
	// terminals (the "●" of failed units); they may hold color codes.
	marks []string
}

func (t *table) add(mark string, cells ...string) {
	t.rows = append(t.rows, cells)
	t.marks = append(t.marks, mark)
}

func (e *env) renderTable(t *table) {
	if !e.tty {
		for _, r := range t.rows {
			cells := make([]string, len(r))
			for i, c := range r {
				if c == "" {
					c = "-"
				}
				if i < len(r)-1 {
					c = strings.ReplaceAll(c, " ", "_")
				}
				cells[i] = c
			}
			fmt.Fprintln(e.stdout, strings.Join(cells, " "))
		}
		return
	}
	widths := make([]int, len(t.header))
	measure := func(r []string) {
		for i, c := range r {
			if i < len(widths) && utf8.RuneCountInString(c) > widths[i] {
				widths[i] = utf8.RuneCountInString(c)
			}
		}
	}
	if e.legend {
		measure(t.header)
	}
	for _, r := range t.rows {
		measure(r)
	}
	gutter := false
	for _, m := range t.marks {
		if m != "" {
			gutter = true
		}
	}
	line := func(mark string, r []string, bold bool) {
		var b strings.Builder
		if gutter {
			if mark == "" {
				b.WriteString("  ")
			} else {
				b.WriteString(mark + " ")
			}
		}
		used := b.Len()
		if gutter {
			used = 2
		}
		for i, c := range r {
			if i == len(r)-1 {
				if !e.full && e.width > 0 && used+utf8.RuneCountInString(c) > e.width {
					c = ellipsize(c, e.width-used)
				}
				b.WriteString(c)
				break
			}
			pad := widths[i] - utf8.RuneCountInString(c)
			b.WriteString(c + strings.Repeat(" ", pad) + " ")
			used += widths[i] + 1
		}
		s := strings.TrimRight(b.String(), " ")
		if bold {
			s = e.color(colorBold, s)
		}
		fmt.Fprintln(e.stdout, s)
	}
	if e.legend {
		line("", t.header, true)
	}
	for i, r := range t.rows {
		line(t.marks[i], r, false)
	}
}

func ellipsize(s string, n int) string {
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// formatTimestamp renders a time as systemd does: "Tue 2024-01-02 15:04:05 UTC".
func formatTimestamp(t time.Time) string {
	return t.Format("Mon 2006-01-02 15:04:05 MST")
}

// formatAgo renders how long ago t was, systemd style: "3s ago",
// "1min 30s ago", "2h 5min ago", "3 days 2h ago".
func formatAgo(now, t time.Time) string {
	d := now.Sub(t)
	// Past a second, systemd counts whole seconds: "28s ago", not
	// "28s 514ms ago".
	past := d >= 0
	if !past {
		d = -d
	}
	if d >= time.Second {
		d = d.Truncate(time.Second)
	}
	if !past {
		return "in " + formatSpan(d)
	}
	return formatSpan(d) + " ago"
}

// formatSpan renders a duration with its two largest units.
func formatSpan(d time.Duration) string {
	type unit struct {
		name string
		size time.Duration
	}
	units := []unit{
		{" days", 24 * time.Hour}, {"h", time.Hour}, {"min", time.Minute},
		{"s", time.Second}, {"ms", time.Millisecond},
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%dus", d/time.Microsecond)
	}
	var parts []string
	for _, u := range units {
		if d >= u.size {
			n := d / u.size
			d -= n * u.size
			name := u.name
			if n == 1 && name == " days" {
				name = " day"
			}
			parts = append(parts, fmt.Sprintf("%d%s", n, name))
			if len(parts) == 2 {
				break
			}
		} else if len(parts) > 0 {
			break
		}
	}
	return strings.Join(parts, " ")
}

// formatBytes renders a size as systemd does: 1.5M, 512.0K, 100B.
func formatBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", v, units[i])
}

// formatCPU renders CPU time: 12ms, 1.234s, 1min 3.123s.
func formatCPU(nsec uint64) string {
	d := time.Duration(nsec)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d < time.Minute:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	m := d / time.Minute
	return fmt.Sprintf("%dmin %.3fs", m, (d - m*time.Minute).Seconds())
}
