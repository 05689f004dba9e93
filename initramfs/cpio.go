package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// File type bits of a cpio mode, as in <sys/stat.h>.
const (
	typeMask    = 0o170000
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
)

// newcMagic starts every header of the "new ASCII" (SVR4, no checksum)
// format, the only one the kernel's initramfs unpacker reads.
const newcMagic = "070701"

// newcHeaderLen is the fixed header size: the magic and 13 eight-digit hex
// fields.
const newcHeaderLen = 6 + 13*8

// trailerName marks the end of a cpio archive.
const trailerName = "TRAILER!!!"

// maxEntrySize bounds what ReadArchive accepts for one file or name, so a
// hostile archive cannot make it allocate without limit.
const maxEntrySize = 1 << 30

// Entry is one member of a cpio archive. Name is relative to the archive
// root, without a leading slash ("etc/hostname"). Mode carries the file type
// bits and the permission bits, as stat(2) reports them. For a symlink,
// Data holds the link target.
type Entry struct {
	Name  string
	Mode  uint32
	UID   uint32
	GID   uint32
	Data  []byte
	Mtime int64
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode&typeMask == typeDir }

// IsSymlink reports whether the entry is a symbolic link.
func (e Entry) IsSymlink() bool { return e.Mode&typeMask == typeSymlink }

// IsRegular reports whether the entry is a regular file.
func (e Entry) IsRegular() bool { return e.Mode&typeMask == typeRegular }

// ArchiveWriter writes a deterministic newc archive: inode numbers count up
// from 1 in the order entries are written, there are no hard links, and the
// device numbers are zero. Callers sort the entries (WriteArchive does).
type ArchiveWriter struct {
	w     *bufio.Writer
	ino   uint32
	off   int64
	names map[string]bool
}

// NewArchiveWriter starts an archive on w.
func NewArchiveWriter(w io.Writer) *ArchiveWriter {
	return &ArchiveWriter{w: bufio.NewWriterSize(w, 1<<20), names: map[string]bool{}}
}

// writeHeader writes an entry's header and name; the caller then writes
// exactly size bytes of content with Write (a symlink's target is its
// content) and the writer pads it.
func (a *ArchiveWriter) writeHeader(name string, mode, uid, gid uint32, mtime int64, size int64) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\x00") {
		return fmt.Errorf("cpio entry name %q: must be relative and non-empty", name)
	}
	if a.names[name] {
		return fmt.Errorf("cpio entry %q written twice", name)
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio entry %q: size %d does not fit newc", name, size)
	}
	a.names[name] = true
	a.ino++
	nlink := uint32(1)
	if mode&typeMask == typeDir {
		nlink = 2
	}
	fields := []uint32{a.ino, mode, uid, gid, nlink, uint32(mtime), uint32(size), 0, 0, 0, 0, uint32(len(name) + 1), 0}
	return a.writeRaw(name, fields)
}

func (a *ArchiveWriter) writeRaw(name string, fields []uint32) error {
	var hdr strings.Builder
	hdr.Grow(newcHeaderLen + len(name) + 4)
	hdr.WriteString(newcMagic)
	for _, f := range fields {
		fmt.Fprintf(&hdr, "%08X", f)
	}
	hdr.WriteString(name)
	hdr.WriteByte(0)
	if _, err := a.w.WriteString(hdr.String()); err != nil {
		return err
	}
	a.off += int64(hdr.Len())
	return a.pad()
}

// pad aligns the stream to 4 bytes, as newc requires after the name and
// after the data.
func (a *ArchiveWriter) pad() error {
	n := (4 - a.off%4) % 4
	if n == 0 {
		return nil
	}
	_, err := a.w.Write(make([]byte, n))
	a.off += n
	return err
}

// WriteEntry writes an entry whose content is in memory.
func (a *ArchiveWriter) WriteEntry(e Entry) error {
	if err := a.writeHeader(e.Name, e.Mode, e.UID, e.GID, e.Mtime, int64(len(e.Data))); err != nil {
		return err
	}
	return a.writeData(e.Data)
}

// WriteFrom writes an entry whose content of size bytes comes from r; it
// fails if r holds a different number of bytes (a host file changed under
// the build).
func (a *ArchiveWriter) WriteFrom(e Entry, size int64, r io.Reader) error {
	if err := a.writeHeader(e.Name, e.Mode, e.UID, e.GID, e.Mtime, size); err != nil {
		return err
	}
	n, err := io.Copy(a.w, io.LimitReader(r, size))
	a.off += n
	if err != nil {
		return fmt.Errorf("cpio entry %q: %w", e.Name, err)
	}
	if n != size {
		return fmt.Errorf("cpio entry %q: got %d bytes, expected %d (file changed during build?)", e.Name, n, size)
	}
	return a.pad()
}

func (a *ArchiveWriter) writeData(data []byte) error {
	n, err := a.w.Write(data)
	a.off += int64(n)
	if err != nil {
		return err
	}
	return a.pad()
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (a *ArchiveWriter) Close() error {
	fields := make([]uint32, 13)
	fields[4] = 1
	fields[11] = uint32(len(trailerName) + 1)
	if err := a.writeRaw(trailerName, fields); err != nil {
		return err
	}
	return a.w.Flush()
}

// WriteArchive writes entries, sorted by name, as a complete newc archive.
// Sorting bytewise puts every directory before what it contains.
func WriteArchive(w io.Writer, entries []Entry) error {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	aw := NewArchiveWriter(w)
	for _, e := range sorted {
		if err := aw.WriteEntry(e); err != nil {
			return err
		}
	}
	return aw.Close()
}

// ReadArchive parses a newc archive up to its trailer. It is the test-side
// check of the writer and is fuzzed, since archives are outside input.
func ReadArchive(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var entries []Entry
	var off int64
	skip := func() error {
		n := (4 - off%4) % 4
		if _, err := io.CopyN(io.Discard, br, n); err != nil {
			return fmt.Errorf("padding at offset %d: %w", off, err)
		}
		off += n
		return nil
	}
	for {
		hdr := make([]byte, newcHeaderLen)
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) && len(entries) == 0 {
				return nil, errors.New("empty archive")
			}
			return nil, fmt.Errorf("header at offset %d: %w", off, err)
		}
		start := off
		off += newcHeaderLen
		if string(hdr[:6]) != newcMagic {
			return nil, fmt.Errorf("header at offset %d: bad magic %q", start, hdr[:6])
		}
		var fields [13]uint32
		for i := range fields {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("header at offset %d: field %d: %w", start, i, err)
			}
			fields[i] = uint32(v)
		}
		nameSize, size := int64(fields[11]), int64(fields[6])
		if nameSize == 0 || nameSize > 4096 {
			return nil, fmt.Errorf("header at offset %d: name size %d", start, nameSize)
		}
		if size > maxEntrySize {
			return nil, fmt.Errorf("header at offset %d: size %d too large", start, size)
		}
		name := make([]byte, nameSize)
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, fmt.Errorf("name at offset %d: %w", off, err)
		}
		off += nameSize
		if name[nameSize-1] != 0 {
			return nil, fmt.Errorf("name at offset %d: not NUL-terminated", start)
		}
		if err := skip(); err != nil {
			return nil, err
		}
		e := Entry{Name: string(name[:nameSize-1]), Mode: fields[1], UID: fields[2], GID: fields[3], Mtime: int64(fields[5])}
		if e.Name == trailerName {
			return entries, nil
		}
		// Grow with what is really read, not with what the header claims.
		var data strings.Builder
		n, err := io.CopyN(&data, br, size)
		off += n
		if err != nil {
			return nil, fmt.Errorf("data of %q: %w", e.Name, err)
		}
		e.Data = []byte(data.String())
		if err := skip(); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
}
