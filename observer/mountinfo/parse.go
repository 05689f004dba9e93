// Package mountinfo is the observer's source of mount table changes. It
// owns the parser of /proc/PID/mountinfo (proc(5)), the diff of two
// tables, and a Watcher that keeps /proc/self/mountinfo open, waits for
// the kernel's "table changed" signal (POLLPRI|POLLERR on that file),
// re-reads the table and posts one event per change: kind "mount",
// "umount" or "remount", with the attributes where, what, fstype, options,
// id and parent, and the Mount as payload. A ChangeSignal only tells that
// the table changed, for followers that do not need the table itself.
//
// The package imports nothing of Vigil but the observer core, so any guest
// (the supervisor's mount units, an outside tool) can follow mounts.
package mountinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Mount is one line of a mountinfo file.
type Mount struct {
	ID, ParentID int
	Major, Minor int
	// Root is the path within the file system that forms the mount's root
	// ("/" unless a bind mount of a sub-tree).
	Root string
	// MountPoint is where the file system is mounted, unescaped.
	MountPoint string
	// Options are the per-mount options (rw, nosuid, relatime, ...).
	Options string
	// Optional are the tagged fields (shared:N, master:N, ...).
	Optional []string
	FSType   string
	// Source is what is mounted: a device node, a remote path, or a
	// file system's name ("tmpfs", "proc").
	Source string
	// SuperOptions are the per-superblock options.
	SuperOptions string
}

// AllOptions gives the mount's per-mount and per-superblock options in one
// comma-separated list, as /proc/self/mounts shows them.
func (m Mount) AllOptions() string {
	switch {
	case m.SuperOptions == "":
		return m.Options
	case m.Options == "":
		return m.SuperOptions
	}
	return m.Options + "," + m.SuperOptions
}

// maxLine bounds one mountinfo line: paths are at most PATH_MAX (4096)
// bytes, escaped up to four times that, and there are two of them.
const maxLine = 64 * 1024

// Read parses the mountinfo file at path.
func Read(path string) ([]Mount, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	mounts, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return mounts, nil
}

// Parse reads mountinfo text. Octal escapes (\040 for a space, \011, \012,
// \134) are decoded in the paths and the source. A malformed line is an
// error naming its number; the lines before it are returned.
func Parse(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := ParseLine(line)
		if err != nil {
			return mounts, fmt.Errorf("line %d: %w", n, err)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return mounts, fmt.Errorf("line %d: %w", len(mounts)+1, err)
	}
	return mounts, nil
}

// ParseLine parses one mountinfo line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func ParseLine(line string) (Mount, error) {
	var m Mount
	// The kernel separates fields by single spaces and escapes only space,
	// tab, newline and backslash: other white space (\r, \f, \v) can be
	// part of a path, so strings.Fields would split it wrongly.
	fields := strings.FieldsFunc(strings.TrimRight(line, "\n"), func(r rune) bool { return r == ' ' })
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 7 || sep < 0 || len(fields) < sep+3 {
		return m, fmt.Errorf("malformed mountinfo line %q: want ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS] - TYPE SOURCE [SUPEROPTIONS]", line)
	}
	var err error
	if m.ID, err = parseID(fields[0]); err != nil {
		return m, fmt.Errorf("mount id: %w", err)
	}
	if m.ParentID, err = parseID(fields[1]); err != nil {
		return m, fmt.Errorf("parent id: %w", err)
	}
	maj, min, ok := strings.Cut(fields[2], ":")
	if !ok {
		return m, fmt.Errorf("device %q: want major:minor", fields[2])
	}
	if m.Major, err = parseID(maj); err != nil {
		return m, fmt.Errorf("device %q: %w", fields[2], err)
	}
	if m.Minor, err = parseID(min); err != nil {
		return m, fmt.Errorf("device %q: %w", fields[2], err)
	}
	m.Root = Unescape(fields[3])
	m.MountPoint = Unescape(fields[4])
	if !strings.HasPrefix(m.MountPoint, "/") {
		return m, fmt.Errorf("mount point %q is not an absolute path", fields[4])
	}
	m.Options = fields[5]
	if sep > 6 {
		m.Optional = append([]string(nil), fields[6:sep]...)
	}
	m.FSType = Unescape(fields[sep+1])
	m.Source = Unescape(fields[sep+2])
	if len(fields) > sep+3 {
		m.SuperOptions = fields[sep+3]
	}
	return m, nil
}

func parseID(s string) (int, error) {
	v, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return int(v), nil
}

// Unescape decodes the kernel's \ooo escapes; anything else is kept.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Escape is the kernel's escaping of paths in mountinfo: space, tab,
// newline and backslash as \ooo.
func Escape(s string) string {
	if !strings.ContainsAny(s, " \t\n\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Format writes m back as a mountinfo line (escaping as the kernel does).
func (m Mount) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d %d:%d %s %s %s", m.ID, m.ParentID, m.Major, m.Minor, Escape(m.Root), Escape(m.MountPoint), m.Options)
	for _, o := range m.Optional {
		b.WriteString(" " + o)
	}
	fmt.Fprintf(&b, " - %s %s", Escape(m.FSType), Escape(m.Source))
	if m.SuperOptions != "" {
		b.WriteString(" " + m.SuperOptions)
	}
	return b.String()
}

// Change kinds, also the kinds of the Watcher's events.
const (
	KindMount   = "mount"
	KindUmount  = "umount"
	KindRemount = "remount"
	// KindResync carries the whole table (Payload []Mount) after events
	// were lost to a full queue: consumers replace what they know.
	KindResync = "resync"
)

// Change is one difference between two tables.
type Change struct {
	Kind  string // KindMount, KindUmount or KindRemount
	Mount Mount  // the mount as it is now (as it was, for umount)
}

// Diff lists what changed from old to now, mounts being identified by
// their ID (the kernel never reuses a live mount's ID). Unmounts come
// first, the deepest (highest ID) first; then remounts; then new mounts,
// parents (lower IDs) first, so a consumer can apply them in order.
func Diff(old, now []Mount) []Change {
	before := make(map[int]Mount, len(old))
	for _, m := range old {
		before[m.ID] = m
	}
	after := make(map[int]bool, len(now))
	var gone, remounted, added []Change
	for _, m := range now {
		after[m.ID] = true
		o, ok := before[m.ID]
		switch {
		case !ok:
			added = append(added, Change{Kind: KindMount, Mount: m})
		case o.MountPoint != m.MountPoint || o.ParentID != m.ParentID:
			// A moved mount (mount --move) is a new mount elsewhere.
			gone = append(gone, Change{Kind: KindUmount, Mount: o})
			added = append(added, Change{Kind: KindMount, Mount: m})
		case o.Options != m.Options || o.SuperOptions != m.SuperOptions || o.Source != m.Source || o.FSType != m.FSType:
			remounted = append(remounted, Change{Kind: KindRemount, Mount: m})
		}
	}
	for _, m := range old {
		if !after[m.ID] {
			gone = append(gone, Change{Kind: KindUmount, Mount: m})
		}
	}
	sort.SliceStable(gone, func(a, b int) bool { return gone[a].Mount.ID > gone[b].Mount.ID })
	sort.SliceStable(added, func(a, b int) bool { return added[a].Mount.ID < added[b].Mount.ID })
	return append(append(gone, remounted...), added...)
}
