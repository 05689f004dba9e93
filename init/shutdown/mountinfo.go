package shutdown

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (see proc(5)).
type Mount struct {
	ID, ParentID int
	Major, Minor int
	// Root is the path within the file system that forms this mount's root.
	Root string
	// MountPoint is the mount's path, unescaped.
	MountPoint string
	// Options are the per-mount options (rw, nosuid, ...).
	Options string
	// Optional holds the optional fields (shared:N, master:N, ...).
	Optional []string
	FSType   string
	Source   string
	// SuperOptions are the per-superblock options.
	SuperOptions string
}

// ReadMountinfo parses the mountinfo file at path (/proc/self/mountinfo).
func ReadMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return mounts, nil
}

// ParseMountinfo parses mountinfo text. Octal escapes (\040 for a space,
// \011, \012, \134) are decoded in paths and the source. A malformed line
// is an error naming its line number.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMountinfoLine(line)
		if err != nil {
			return mounts, fmt.Errorf("line %d: %w", n, err)
		}
		mounts = append(mounts, m)
	}
	return mounts, sc.Err()
}

func parseMountinfoLine(line string) (Mount, error) {
	var m Mount
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 7 || sep < 0 || len(fields) < sep+3 {
		return m, fmt.Errorf("malformed mountinfo line %q", line)
	}
	var err error
	if m.ID, err = strconv.Atoi(fields[0]); err != nil {
		return m, fmt.Errorf("mount id %q: %w", fields[0], err)
	}
	if m.ParentID, err = strconv.Atoi(fields[1]); err != nil {
		return m, fmt.Errorf("parent id %q: %w", fields[1], err)
	}
	maj, min, ok := strings.Cut(fields[2], ":")
	if !ok {
		return m, fmt.Errorf("device %q: want major:minor", fields[2])
	}
	if m.Major, err = strconv.Atoi(maj); err != nil {
		return m, fmt.Errorf("device %q: %w", fields[2], err)
	}
	if m.Minor, err = strconv.Atoi(min); err != nil {
		return m, fmt.Errorf("device %q: %w", fields[2], err)
	}
	m.Root = unescapeOctal(fields[3])
	m.MountPoint = unescapeOctal(fields[4])
	m.Options = fields[5]
	if sep > 6 {
		m.Optional = append([]string(nil), fields[6:sep]...)
	}
	m.FSType = unescapeOctal(fields[sep+1])
	m.Source = unescapeOctal(fields[sep+2])
	if len(fields) > sep+3 {
		m.SuperOptions = fields[sep+3]
	}
	return m, nil
}

// unescapeOctal decodes the kernel's \ooo escapes; anything else is kept.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// UnmountOrder returns the mounts in the order they can be unmounted:
// every mount before the mount it sits on (children first), and among
// siblings the later-mounted first, since a later mount can hide an
// earlier one at the same path.
func UnmountOrder(mounts []Mount) []Mount {
	pos := make(map[int]int, len(mounts))
	for i, m := range mounts {
		pos[m.ID] = i
	}
	depth := make([]int, len(mounts))
	for i := range mounts {
		d := 0
		seen := map[int]bool{mounts[i].ID: true}
		for p, ok := pos[mounts[i].ParentID]; ok && !seen[mounts[p].ID]; p, ok = pos[mounts[p].ParentID] {
			seen[mounts[p].ID] = true
			d++
		}
		depth[i] = d
	}
	idx := make([]int, len(mounts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if depth[idx[a]] != depth[idx[b]] {
			return depth[idx[a]] > depth[idx[b]]
		}
		return idx[a] > idx[b]
	})
	out := make([]Mount, len(mounts))
	for i, j := range idx {
		out[i] = mounts[j]
	}
	return out
}
