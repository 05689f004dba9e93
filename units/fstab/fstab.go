// Package fstab is Vigil's systemd-fstab-generator: it parses /etc/fstab
// and writes one .mount unit (or .swap, or .automount with its mount) per
// entry into a generator directory on the manager's unit path, with the
// .wants/.requires links that make local-fs.target, remote-fs.target and
// swap.target pull them in. The manager runs it at start and on every
// daemon-reload (units.Options.Generators).
//
// A bad line is reported with its file and line number and skipped; the
// other lines are still generated, so one typo never stops the boot.
package fstab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vigil/observer/mountinfo"
	"vigil/observer/uevent/devnode"
	"vigil/units/unitfile"
)

// DefaultPath is the file system table read at boot.
const DefaultPath = "/etc/fstab"

// Entry is one line of fstab(5).
type Entry struct {
	File string
	Line int
	// Spec is the first field as written ("UUID=...", "/dev/vdb", "tmpfs").
	Spec string
	// What is Spec with tags resolved to /dev/disk/by-* paths.
	What    string
	Where   string
	Type    string
	Options string
	Freq    int
	Pass    int
}

// Pos is "file:line", for messages.
func (e Entry) Pos() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// IsSwap reports whether the entry is a swap area.
func (e Entry) IsSwap() bool { return e.Type == "swap" }

// tagDirs maps fstab's tags to the udev link directories.
var tagDirs = map[string]string{"UUID": "by-uuid", "LABEL": "by-label", "PARTUUID": "by-partuuid", "PARTLABEL": "by-partlabel"}

// ResolveSpec turns UUID=, LABEL=, PARTUUID= and PARTLABEL= into the
// /dev/disk/by-* link udev (and Vigil's device handling) makes for them,
// under diskDir (normally /dev/disk). Other specs are returned as they are.
func ResolveSpec(spec, diskDir string) (string, error) {
	tag, value, ok := strings.Cut(spec, "=")
	dir, known := tagDirs[tag]
	if !ok || !known {
		return spec, nil
	}
	value = strings.Trim(value, `"`)
	if value == "" {
		return "", fmt.Errorf("%s= has no value", tag)
	}
	if tag == "UUID" || tag == "PARTUUID" {
		value = strings.ToLower(value)
	}
	return filepath.Join(diskDir, dir, devnode.EncodeName(value)), nil
}

// Parse reads fstab text. Lines that cannot be used are errors naming
// file:line; they are left out and the rest is returned.
func Parse(r io.Reader, file, diskDir string) ([]Entry, []error) {
	var entries []Entry
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line, diskDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", file, n, err))
			continue
		}
		e.File, e.Line = file, n
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	return entries, errs
}

func parseLine(line, diskDir string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return Entry{}, fmt.Errorf("want at least a source and a mount point (SPEC FILE [TYPE [OPTIONS [FREQ [PASS]]]]), got %q", line)
	}
	if len(f) > 6 {
		return Entry{}, fmt.Errorf("%d fields, at most 6 (SPEC FILE TYPE OPTIONS FREQ PASS); escape spaces as \\040", len(f))
	}
	e := Entry{Spec: mountinfo.Unescape(f[0]), Where: mountinfo.Unescape(f[1]), Type: "auto", Options: "defaults"}
	if len(f) > 2 {
		e.Type = mountinfo.Unescape(f[2])
	}
	if len(f) > 3 {
		e.Options = f[3]
	}
	var err error
	if len(f) > 4 {
		if e.Freq, err = strconv.Atoi(f[4]); err != nil || e.Freq < 0 {
			return e, fmt.Errorf("dump frequency %q is not a number", f[4])
		}
	}
	if len(f) > 5 {
		if e.Pass, err = strconv.Atoi(f[5]); err != nil || e.Pass < 0 {
			return e, fmt.Errorf("fsck pass %q is not a number", f[5])
		}
	}
	if e.What, err = ResolveSpec(e.Spec, diskDir); err != nil {
		return e, err
	}
	if e.IsSwap() {
		if !strings.HasPrefix(e.What, "/") {
			return e, fmt.Errorf("swap source %q is not a path, UUID=, LABEL=, PARTUUID= or PARTLABEL=", e.Spec)
		}
		return e, nil
	}
	if !strings.HasPrefix(e.Where, "/") {
		return e, fmt.Errorf("mount point %q is not an absolute path", e.Where)
	}
	for _, part := range strings.Split(e.Where, "/") {
		if part == ".." || part == "." {
			return e, fmt.Errorf("mount point %q has a %q component", e.Where, part)
		}
	}
	e.Where = path.Clean(e.Where)
	if strings.ContainsRune(e.Spec+e.Where+e.Type+e.Options, 0) {
		return e, fmt.Errorf("NUL byte in the line")
	}
	return e, nil
}

// Options configure the generator.
type Options struct {
	// Path is the table; default DefaultPath. A missing file is no error.
	Path string
	// DiskDir is where UUID= and friends point; default /dev/disk.
	DiskDir string
}

// Generator returns a units.Generator (a func(dir string) []error) for the
// manager.
func Generator(opts Options) func(dir string) []error {
	return func(dir string) []error { return Generate(opts, dir) }
}

// Generate reads the table and writes the units into dir.
func Generate(opts Options, dir string) []error {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.DiskDir == "" {
		opts.DiskDir = "/dev/disk"
	}
	f, err := os.Open(opts.Path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return []error{fmt.Errorf("fstab: %w", err)}
	}
	defer f.Close()
	entries, errs := Parse(f, opts.Path, opts.DiskDir)
	return append(errs, Write(entries, dir)...)
}

// Write writes the units of entries into dir. An entry that cannot be
// turned into units (a duplicate mount point, a bad x-systemd option) is
// an error naming its line; the others are written.
func Write(entries []Entry, dir string) []error {
	var errs []error
	seen := map[string]Entry{}
	for _, e := range entries {
		if !e.IsSwap() && e.Where == "/" {
			// The root is mounted before the manager runs (the kernel or
			// the initramfs did it); remounting it is not a unit's job.
			continue
		}
		key := e.Where
		if e.IsSwap() {
			key = "swap:" + e.What
		}
		if first, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is already in %s; this line is ignored", e.Pos(), e.Where, first.Pos()))
			continue
		}
		seen[key] = e
		if err := writeEntry(e, dir); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Pos(), err))
		}
	}
	return errs
}

// entryOptions are the x-systemd.* and other generator options of a line.
type entryOptions struct {
	noauto, nofail, netdev, automount bool
	idleTimeout, deviceTimeout        time.Duration
	mountTimeout                      time.Duration
	requires, after, before, wantedBy []string
	requiresMountsFor                 []string
	priority                          *int
}

func parseEntryOptions(opts string) (entryOptions, error) {
	var o entryOptions
	for _, opt := range strings.Split(opts, ",") {
		name, value, _ := strings.Cut(opt, "=")
		dur := func() (time.Duration, error) {
			d, err := unitfile.ParseDuration(value)
			if err != nil {
				return 0, fmt.Errorf("option %s: %w", opt, err)
			}
			return d, nil
		}
		var err error
		switch name {
		case "noauto":
			o.noauto = true
		case "auto":
			o.noauto = false
		case "nofail":
			o.nofail = true
		case "_netdev":
			o.netdev = true
		case "x-systemd.automount":
			o.automount = true
		case "x-systemd.idle-timeout":
			o.idleTimeout, err = dur()
		case "x-systemd.device-timeout":
			o.deviceTimeout, err = dur()
		case "x-systemd.mount-timeout":
			o.mountTimeout, err = dur()
		case "x-systemd.requires", "x-systemd.after", "x-systemd.before", "x-systemd.wanted-by", "x-systemd.required-by":
			if value == "" {
				return o, fmt.Errorf("option %s needs a value", name)
			}
			target := value
			if strings.HasPrefix(value, "/") {
				// A path names the unit of the mount point it needs.
				if name == "x-systemd.requires" {
					o.requiresMountsFor = append(o.requiresMountsFor, path.Clean(value))
					continue
				}
				if target, err = unitfile.MountUnitName(value); err != nil {
					return o, fmt.Errorf("option %s: %w", opt, err)
				}
			} else if _, err := unitfile.ParseName(value); err != nil {
				return o, fmt.Errorf("option %s: %w", opt, err)
			}
			switch name {
			case "x-systemd.requires":
				o.requires = append(o.requires, target)
			case "x-systemd.after":
				o.after = append(o.after, target)
			case "x-systemd.before":
				o.before = append(o.before, target)
			default:
				o.wantedBy = append(o.wantedBy, target)
			}
		case "x-systemd.requires-mounts-for":
			if !strings.HasPrefix(value, "/") {
				return o, fmt.Errorf("option %s: want an absolute path", opt)
			}
			o.requiresMountsFor = append(o.requiresMountsFor, path.Clean(value))
		case "pri":
			p, perr := strconv.Atoi(value)
			if perr != nil || p < -1 || p > 32767 {
				return o, fmt.Errorf("option %s: want a priority from -1 to 32767", opt)
			}
			o.priority = &p
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

var networkTypes = []string{"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "ncpfs", "glusterfs", "ceph", "9p", "davfs", "ocfs2", "gfs2", "lustre", "afs"}

func isNetwork(e Entry, o entryOptions) bool {
	if o.netdev {
		return true
	}
	t := strings.TrimPrefix(e.Type, "fuse.")
	for _, n := range networkTypes {
		if t == n {
			return true
		}
	}
	return false
}

func writeEntry(e Entry, dir string) error {
	o, err := parseEntryOptions(e.Options)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by vigil's fstab generator from %s.\n", e.Pos())
	var unitName, target string
	unitSection := func(desc string) {
		b.WriteString("[unit]\n")
		fmt.Fprintf(&b, "description = %s\n", unitfile.QuoteString(desc))
		fmt.Fprintf(&b, "documentation = %s\n", unitfile.QuoteString("man:fstab(5)"))
		deps := func(key string, names []string) {
			if len(names) > 0 {
				fmt.Fprintf(&b, "%s = [%s]\n", key, quoteList(names))
			}
		}
		var reqMounts []string
		for _, p := range o.requiresMountsFor {
			if n, err := unitfile.MountUnitName(p); err == nil {
				reqMounts = append(reqMounts, n)
			}
		}
		deps("requires", append(append([]string(nil), o.requires...), reqMounts...))
		deps("after", append(append(append([]string(nil), o.requires...), reqMounts...), o.after...))
		deps("before", o.before)
	}
	if e.IsSwap() {
		if unitName, err = unitfile.DeviceUnitName(e.What); err != nil {
			return err
		}
		unitName = strings.TrimSuffix(unitName, ".device") + ".swap"
		target = "swap.target"
		unitSection("Swap " + e.Spec)
		b.WriteString("\n[swap]\n")
		fmt.Fprintf(&b, "what = %s\n", unitfile.QuoteString(e.What))
		if o.priority != nil {
			fmt.Fprintf(&b, "priority = %d\n", *o.priority)
		}
		fmt.Fprintf(&b, "options = %s\n", unitfile.QuoteString(e.Options))
	} else {
		if unitName, err = unitfile.MountUnitName(e.Where); err != nil {
			return err
		}
		target = "local-fs.target"
		if isNetwork(e, o) {
			target = "remote-fs.target"
		}
		unitSection(e.Where)
		b.WriteString("\n[mount]\n")
		fmt.Fprintf(&b, "what = %s\n", unitfile.QuoteString(e.What))
		fmt.Fprintf(&b, "where = %s\n", unitfile.QuoteString(e.Where))
		if e.Type != "auto" {
			fmt.Fprintf(&b, "type = %s\n", unitfile.QuoteString(e.Type))
		}
		fmt.Fprintf(&b, "options = %s\n", unitfile.QuoteString(e.Options))
		if o.mountTimeout > 0 {
			fmt.Fprintf(&b, "timeout = %s\n", unitfile.QuoteString(formatDuration(o.mountTimeout)))
		}
	}
	if len(unitName) > unitfile.MaxNameLength {
		return fmt.Errorf("unit name for %s is longer than %d characters", e.Where, unitfile.MaxNameLength)
	}
	if err := os.WriteFile(filepath.Join(dir, unitName), []byte(b.String()), 0o644); err != nil {
		return err
	}
	linked := unitName
	if o.automount && !e.IsSwap() {
		linked = strings.TrimSuffix(unitName, ".mount") + ".automount"
		var a strings.Builder
		fmt.Fprintf(&a, "# Generated by vigil's fstab generator from %s.\n[unit]\ndescription = %s\ndocumentation = %s\n", e.Pos(), unitfile.QuoteString(e.Where+" (automount)"), unitfile.QuoteString("man:fstab(5)"))
		fmt.Fprintf(&a, "before = [%s]\n", unitfile.QuoteString(target))
		fmt.Fprintf(&a, "\n[automount]\nwhere = %s\n", unitfile.QuoteString(e.Where))
		if o.idleTimeout > 0 {
			fmt.Fprintf(&a, "timeout-idle = %s\n", unitfile.QuoteString(formatDuration(o.idleTimeout)))
		}
		if err := os.WriteFile(filepath.Join(dir, linked), []byte(a.String()), 0o644); err != nil {
			return err
		}
	}
	if o.deviceTimeout > 0 && strings.HasPrefix(e.What, "/dev/") {
		if dev, err := unitfile.DeviceUnitName(e.What); err == nil {
			content := fmt.Sprintf("# Generated by vigil's fstab generator from %s (x-systemd.device-timeout).\n[unit]\njob-timeout = %s\n", e.Pos(), unitfile.QuoteString(formatDuration(o.deviceTimeout)))
			if err := os.WriteFile(filepath.Join(dir, dev), []byte(content), 0o644); err != nil {
				return err
			}
		}
	}
	var links []string
	if !o.noauto {
		kind := ".requires"
		if o.nofail || o.automount {
			kind = ".wants"
		}
		links = append(links, target+kind)
	}
	for _, w := range o.wantedBy {
		links = append(links, w+".wants")
	}
	for _, l := range links {
		d := filepath.Join(dir, l)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		os.Remove(filepath.Join(d, linked))
		if err := os.Symlink(filepath.Join("..", linked), filepath.Join(d, linked)); err != nil {
			return err
		}
	}
	return nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = unitfile.QuoteString(n)
	}
	return strings.Join(q, ", ")
}

// formatDuration writes a duration as a systemd time span in whole
// milliseconds, which ParseDuration reads back exactly.
func formatDuration(d time.Duration) string {
	if d == unitfile.Infinity {
		return "infinity"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
