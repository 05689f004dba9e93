package initramfs

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Compression is how the archive is compressed. Uncompressed is the
// default: under QEMU TCG the kernel unpacks a plain archive faster than it
// inflates a gzip one (platform notes: 0.86 s against 2.0 s for 118 MB).
type Compression string

// The compressions the kernel's initramfs unpacker and this builder share.
const (
	CompressNone Compression = "none"
	CompressGzip Compression = "gzip"
)

// ParseCompression accepts "", "none" and "gzip".
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", CompressNone:
		return CompressNone, nil
	case CompressGzip:
		return CompressGzip, nil
	}
	return "", fmt.Errorf("unknown compression %q (want none or gzip)", s)
}

// node is one file of the image. A regular file's content is either in
// entry.Data or, to keep large binaries out of memory until the archive is
// written, in the host file hostPath of size bytes.
type node struct {
	entry    Entry
	hostPath string
	size     int64
}

// Image is the file tree of an initramfs, built in memory and written as a
// deterministic cpio archive: entries sorted by path, every mtime the
// image's, inode numbers sequential. Parent directories are created on
// demand with mode 0755. Adding a path again replaces the earlier file (so
// --add can override a default), but a directory is never replaced by a
// file or the reverse.
type Image struct {
	nodes map[string]*node
	mtime int64
	notes []string
}

// NewImage returns an empty image whose entries carry mtime (seconds since
// the epoch; 0 or SOURCE_DATE_EPOCH for reproducible builds).
func NewImage(mtime int64) *Image {
	return &Image{nodes: map[string]*node{}, mtime: mtime}
}

// Notes are remarks the build made that a user should see (for example,
// compressed kernel modules carried as they are).
func (im *Image) Notes() []string { return append([]string(nil), im.notes...) }

// Note records a remark for the user.
func (im *Image) Note(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

// cleanGuestPath turns "/etc//x/" into "etc/x"; it rejects the root and
// anything climbing out of it.
func cleanGuestPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("guest path %q is not absolute", p)
	}
	c := strings.TrimPrefix(path.Clean(p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("guest path %q names the root", p)
	}
	return c, nil
}

func (im *Image) ensureParents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if n, ok := im.nodes[dir]; ok {
		if !n.entry.IsDir() {
			return fmt.Errorf("/%s: parent /%s is not a directory", name, dir)
		}
		return nil
	}
	if err := im.ensureParents(dir); err != nil {
		return err
	}
	im.nodes[dir] = &node{entry: Entry{Name: dir, Mode: typeDir | 0o755, Mtime: im.mtime}}
	return nil
}

func (im *Image) put(n *node) error {
	if old, ok := im.nodes[n.entry.Name]; ok && old.entry.IsDir() != n.entry.IsDir() {
		return fmt.Errorf("/%s: cannot replace %s with %s", n.entry.Name, kind(old.entry), kind(n.entry))
	}
	if err := im.ensureParents(n.entry.Name); err != nil {
		return err
	}
	n.entry.Mtime = im.mtime
	im.nodes[n.entry.Name] = n
	return nil
}

func kind(e Entry) string {
	switch {
	case e.IsDir():
		return "a directory"
	case e.IsSymlink():
		return "a symlink"
	}
	return "a file"
}

// AddDir adds a directory with the given permission bits (setgid, setuid
// and sticky included).
func (im *Image) AddDir(guest string, perm fs.FileMode) error {
	name, err := cleanGuestPath(guest)
	if err != nil {
		return err
	}
	return im.put(&node{entry: Entry{Name: name, Mode: typeDir | modeBits(perm)}})
}

// AddBytes adds a regular file with the given content.
func (im *Image) AddBytes(guest string, data []byte, perm fs.FileMode) error {
	name, err := cleanGuestPath(guest)
	if err != nil {
		return err
	}
	return im.put(&node{entry: Entry{Name: name, Mode: typeRegular | modeBits(perm), Data: data}})
}

// AddSymlink adds a symbolic link to target.
func (im *Image) AddSymlink(guest, target string) error {
	name, err := cleanGuestPath(guest)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("symlink %s: empty target", guest)
	}
	return im.put(&node{entry: Entry{Name: name, Mode: typeSymlink | 0o777, Data: []byte(target)}})
}

// AddHostFile adds the host file at host (following symlinks) as a regular
// file with the host's permission bits. Its content is read when the
// archive is written.
func (im *Image) AddHostFile(guest, host string) error {
	st, err := os.Stat(host)
	if err != nil {
		return fmt.Errorf("add %s: %w", host, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("add %s: not a regular file (%v)", host, st.Mode().Type())
	}
	name, err := cleanGuestPath(guest)
	if err != nil {
		return err
	}
	return im.put(&node{
		entry:    Entry{Name: name, Mode: typeRegular | modeBits(st.Mode())},
		hostPath: host,
		size:     st.Size(),
	})
}

// AddProgram adds the host file at host as guest and, if it is a
// dynamically linked ELF program, its interpreter and every shared library
// it needs, each at its host path.
func (im *Image) AddProgram(guest, host string, libs *LibraryResolver) error {
	if err := im.AddHostFile(guest, host); err != nil {
		return err
	}
	c, err := libs.Closure(host)
	if err != nil {
		return fmt.Errorf("add %s: %w", host, err)
	}
	deps := append([]string(nil), c.Libraries...)
	if c.Interpreter != "" {
		deps = append(deps, c.Interpreter)
	}
	for _, lib := range deps {
		if name, _ := cleanGuestPath(lib); im.nodes[name] != nil {
			continue
		}
		if err := im.AddHostFile(lib, libs.host(lib)); err != nil {
			return fmt.Errorf("add %s: library: %w", host, err)
		}
	}
	links := make([]string, 0, len(c.DefaultDirLinks))
	for link := range c.DefaultDirLinks {
		links = append(links, link)
	}
	sort.Strings(links)
	for _, link := range links {
		if name, _ := cleanGuestPath(link); im.nodes[name] != nil {
			continue
		}
		if err := im.AddSymlink(link, c.DefaultDirLinks[link]); err != nil {
			return err
		}
	}
	return nil
}

// SetOwner changes the owner of an added path.
func (im *Image) SetOwner(guest string, uid, gid uint32) error {
	name, err := cleanGuestPath(guest)
	if err != nil {
		return err
	}
	n, ok := im.nodes[name]
	if !ok {
		return fmt.Errorf("set owner of %s: not in the image", guest)
	}
	n.entry.UID, n.entry.GID = uid, gid
	return nil
}

// Lookup returns the entry at a guest path; the content of a file added
// from the host is not loaded (Data is nil).
func (im *Image) Lookup(guest string) (Entry, bool) {
	name, err := cleanGuestPath(guest)
	if err != nil {
		return Entry{}, false
	}
	n, ok := im.nodes[name]
	if !ok {
		return Entry{}, false
	}
	return n.entry, true
}

// Paths returns every guest path in the image, sorted, with a leading
// slash.
func (im *Image) Paths() []string {
	paths := make([]string, 0, len(im.nodes))
	for name := range im.nodes {
		paths = append(paths, "/"+name)
	}
	sort.Strings(paths)
	return paths
}

// modeBits converts Go's permission and special bits into stat(2) bits.
func modeBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

// Write writes the image as a cpio newc archive, compressed as asked.
func (im *Image) Write(w io.Writer, c Compression) error {
	switch c {
	case "", CompressNone:
		return im.writeArchive(w)
	case CompressGzip:
		// A zero gzip header (no name, no mtime) keeps the output
		// reproducible.
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		if err := im.writeArchive(zw); err != nil {
			return err
		}
		return zw.Close()
	}
	return fmt.Errorf("unknown compression %q", c)
}

func (im *Image) writeArchive(w io.Writer) error {
	names := make([]string, 0, len(im.nodes))
	for name := range im.nodes {
		names = append(names, name)
	}
	// Bytewise order puts each directory before its contents.
	sort.Strings(names)
	aw := NewArchiveWriter(w)
	for _, name := range names {
		n := im.nodes[name]
		if n.hostPath == "" {
			if err := aw.WriteEntry(n.entry); err != nil {
				return err
			}
			continue
		}
		if err := writeHostFile(aw, n); err != nil {
			return err
		}
	}
	return aw.Close()
}

func writeHostFile(aw *ArchiveWriter, n *node) error {
	f, err := os.Open(n.hostPath)
	if err != nil {
		return fmt.Errorf("write /%s: %w", n.entry.Name, err)
	}
	defer f.Close()
	if err := aw.WriteFrom(n.entry, n.size, f); err != nil {
		return fmt.Errorf("write /%s from %s: %w", n.entry.Name, n.hostPath, err)
	}
	return nil
}

// WriteFile writes the image to path atomically (a temporary file renamed
// into place), so a reader never sees half an archive.
func (im *Image) WriteFile(path string, c Compression) error {
	tmp, err := os.CreateTemp(dirOf(path), ".initramfs-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := im.Write(tmp, c); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func dirOf(p string) string {
	d := path.Dir(p)
	if d == "" {
		return "."
	}
	return d
}
