package cgroup

import (
	"fmt"
	"strings"
)

// Well-known names of the tree, as systemd lays it out.
const (
	// RootSlice is the slice at the top of the tree: it has no directory
	// of its own, its children sit in the root.
	RootSlice = "-.slice"
	// SystemSlice holds services, sockets and mounts that name no slice.
	SystemSlice = "system.slice"
	// InitScope holds PID 1 itself, so the root has no processes of its
	// own besides the kernel's and controllers can be enabled below it.
	InitScope = "init.scope"
)

// SlicePath is the directory of a slice relative to the tree's root:
// slices nest by the dashes of their names, so "a-b.slice" lives in
// "a.slice/a-b.slice", and "-.slice" is the root itself ("").
func SlicePath(slice string) (string, error) {
	if slice == RootSlice {
		return "", nil
	}
	prefix, ok := strings.CutSuffix(slice, ".slice")
	if !ok || prefix == "" {
		return "", fmt.Errorf("slice %q: a slice name ends in .slice", slice)
	}
	if strings.HasPrefix(prefix, "-") || strings.HasSuffix(prefix, "-") || strings.Contains(prefix, "--") || strings.ContainsAny(prefix, "/\x00") {
		return "", fmt.Errorf("slice %q: dashes separate the names of parent slices and may not lead, trail or repeat", slice)
	}
	if prefix == "." || prefix == ".." {
		return "", fmt.Errorf("slice %q: not a directory name", slice)
	}
	parts := strings.Split(prefix, "-")
	dirs := make([]string, len(parts))
	for i := range parts {
		dirs[i] = strings.Join(parts[:i+1], "-") + ".slice"
	}
	return strings.Join(dirs, "/"), nil
}

// ParentSlices lists the slices enclosing slice, outermost first, not
// counting the root slice: "a-b-c.slice" gives a.slice, a-b.slice.
func ParentSlices(slice string) []string {
	prefix, ok := strings.CutSuffix(slice, ".slice")
	if !ok {
		return nil
	}
	parts := strings.Split(prefix, "-")
	var out []string
	for i := 1; i < len(parts); i++ {
		out = append(out, strings.Join(parts[:i], "-")+".slice")
	}
	return out
}

// UnitPath is the directory of a unit relative to the tree's root. A
// slice unit is its own slice path; any other unit sits in its slice
// (system.slice when slice is empty).
func UnitPath(unit, slice string) (string, error) {
	if strings.HasSuffix(unit, ".slice") {
		return SlicePath(unit)
	}
	if unit == "" || strings.ContainsAny(unit, "/\x00") || unit == "." || unit == ".." {
		return "", fmt.Errorf("unit %q: not usable as a cgroup name", unit)
	}
	if slice == "" {
		slice = SystemSlice
	}
	dir, err := SlicePath(slice)
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", unit, err)
	}
	if dir == "" {
		return unit, nil
	}
	return dir + "/" + unit, nil
}
