// Package devnode owns what Vigil does to device nodes after devtmpfs made
// them, in udev's place: the /dev/disk/by-uuid and by-label links of block
// devices (from the file system's superblock, see blkid), the by-partuuid
// and by-partlabel links of partitions (from the disk's partition table,
// see parttable) and the owner, group and mode that the rules file
// /etc/vigil/devices.toml gives a node.
//
// Every function takes a root directory that stands for "/", so the whole
// package runs against a temporary tree in tests and against / in PID 1.
package devnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"vigil/observer/uevent/blkid"
)

// managedDirs are the link directories this package creates links in and
// prunes stale links from.
func managedDirs() []string {
	return []string{"/dev/disk/by-uuid", "/dev/disk/by-label", "/dev/disk/by-partuuid", "/dev/disk/by-partlabel"}
}

// Link is one symlink: Path (absolute, under /dev) points to Target (the
// device node, absolute).
type Link struct {
	Path   string
	Target string
}

// Links gives the links udev's 60-persistent-storage rules would make for
// a block device node holding the identified file system:
// /dev/disk/by-uuid/UUID and /dev/disk/by-label/LABEL, with the names
// encoded as udev encodes them (bytes outside [A-Za-z0-9#+-.:=@_] and
// outside valid UTF-8 become \xNN, so "my disk" gives "my\x20disk").
func Links(devnode string, id blkid.Identity) []Link {
	var links []Link
	if id.UUID != "" {
		links = append(links, Link{Path: "/dev/disk/by-uuid/" + EncodeName(id.UUID), Target: devnode})
	}
	if id.Label != "" {
		links = append(links, Link{Path: "/dev/disk/by-label/" + EncodeName(id.Label), Target: devnode})
	}
	return links
}

// EncodeName encodes a string for use as one link name, as udev's
// encode_devnode_name does.
func EncodeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case size > 1 && r != utf8.RuneError:
			b.WriteString(s[i : i+size])
		case isAllowed(s[i]):
			b.WriteByte(s[i])
		default:
			fmt.Fprintf(&b, `\x%02x`, s[i])
			size = 1
		}
		i += size
	}
	return b.String()
}

func isAllowed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("#+-.:=@_", c) >= 0
}

// Apply creates each link under root (root "/" is the real system),
// relative to its directory as udev makes them ("../../vda1"), creating
// the directories it needs. An existing link is replaced atomically; an
// existing file or directory in the way is an error.
func Apply(root string, links []Link) error {
	var errs []error
	for _, l := range links {
		if err := applyLink(root, l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func applyLink(root string, l Link) error {
	if !filepath.IsAbs(l.Path) || !filepath.IsAbs(l.Target) || strings.Contains(l.Path, "/../") || filepath.Clean(l.Path) != l.Path {
		return fmt.Errorf("link %s -> %s: paths must be clean and absolute", l.Path, l.Target)
	}
	full := filepath.Join(root, l.Path)
	dir := filepath.Dir(full)
	target, err := filepath.Rel(filepath.Dir(l.Path), l.Target)
	if err != nil {
		return fmt.Errorf("link %s: %w", l.Path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("link %s: %w", l.Path, err)
	}
	if fi, err := os.Lstat(full); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("link %s: a %s is in the way", l.Path, fi.Mode().Type())
		}
		if cur, err := os.Readlink(full); err == nil && cur == target {
			return nil
		}
	}
	tmp := filepath.Join(dir, ".vigil-tmp-"+filepath.Base(full))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", l.Path, err)
	}
	if err := os.Rename(tmp, full); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", l.Path, err)
	}
	return nil
}

// Prune removes the links under root's managed directories
// (/dev/disk/by-uuid, by-label, by-partuuid, by-partlabel) that point to devnode, except
// those in keep. After a "change" (a new label) call it with the new
// links; after a "remove" with none.
func Prune(root, devnode string, keep []Link) error {
	kept := make(map[string]bool, len(keep))
	for _, l := range keep {
		kept[l.Path] = true
	}
	var errs []error
	for _, dir := range managedDirs() {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("prune %s: %w", dir, err))
			}
			continue
		}
		for _, e := range entries {
			path := dir + "/" + e.Name()
			if e.Type()&fs.ModeSymlink == 0 || kept[path] {
				continue
			}
			full := filepath.Join(root, path)
			target, err := os.Readlink(full)
			if err != nil {
				continue
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			if filepath.Clean(target) != filepath.Clean(devnode) {
				continue
			}
			if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("prune %s: %w", path, err))
			}
		}
	}
	return errors.Join(errs...)
}
