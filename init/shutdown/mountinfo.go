package shutdown

import (
	"fmt"
	"io"
	"os"
	"sort"

	"vigil/observer/mountinfo"
)

// Mount is one line of /proc/PID/mountinfo (see proc(5)); the parser is
// the mount-table source's, so there is one reading of the kernel's format.
type Mount = mountinfo.Mount

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
func ParseMountinfo(r io.Reader) ([]Mount, error) { return mountinfo.Parse(r) }

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
