// Package initramfs builds the bootable initramfs of a Vigil test guest: a
// deterministic cpio "newc" archive (writer and reader here) holding Vigil
// as /init, initctl, busybox with its applet links, the kernel modules the
// guest needs with their modules.dep closure, /etc basics, the default
// unit set, and host programs with the shared libraries they need.
//
// It owns the image layout and the default units (embedded from units/).
// It does not load modules or boot anything: Vigil's PID 1 loads what
// /etc/modules-load.d names, and package qemu boots the archive.
package initramfs

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed units
var defaultUnits embed.FS

// Guest paths of the image layout that other packages refer to.
const (
	UnitDir         = "/etc/vigil/units"
	ModulesLoadConf = "/etc/modules-load.d/vigil-vm.conf"
	ConsoleShell    = "console-shell.service"
)

// Addition is a host file to copy into the image (--add HOST[:GUEST]).
type Addition struct {
	Host  string
	Guest string
}

// ParseAddition parses HOST[:GUEST]; GUEST defaults to HOST. Both must be
// absolute (a relative HOST is made absolute against the working
// directory).
func ParseAddition(s string) (Addition, error) {
	host, guest, hasGuest := strings.Cut(s, ":")
	if host == "" {
		return Addition{}, fmt.Errorf("--add %q: empty host path", s)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		return Addition{}, fmt.Errorf("--add %q: %w", s, err)
	}
	if !hasGuest || guest == "" {
		guest = abs
	}
	if !strings.HasPrefix(guest, "/") {
		return Addition{}, fmt.Errorf("--add %q: guest path %q is not absolute", s, guest)
	}
	return Addition{Host: abs, Guest: guest}, nil
}

// File is a file given by content.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// Spec says what goes into an image.
type Spec struct {
	// Vigil and Initctl are host paths of the two programs (static
	// binaries are expected; a dynamic one brings its libraries).
	Vigil   string
	Initctl string
	// Busybox is the host busybox; default /bin/busybox.
	Busybox string
	// ModulesDir is /lib/modules/<release> of the kernel to boot. Empty
	// means no modules at all.
	ModulesDir string
	// Modules are the module names to carry and load; nil means
	// DefaultModules().
	Modules []string
	// Adds are host files to copy (ELF programs with their libraries).
	Adds []Addition
	// UnitDirs are directories whose files go to /etc/vigil/units.
	UnitDirs []string
	// ConsoleShell enables console-shell.service (interactive boots).
	ConsoleShell bool
	// Files are added last, so they override anything above.
	Files []File
	// ModTime is every entry's mtime (seconds since the epoch).
	ModTime int64
}

// Build assembles the image Spec describes. Nothing is read from the host
// files beyond their metadata and ELF headers until the image is written.
func Build(spec Spec) (*Image, error) {
	im := NewImage(spec.ModTime)
	libs, err := NewLibraryResolver("")
	if err != nil {
		return nil, err
	}
	if err := addSkeleton(im); err != nil {
		return nil, err
	}
	if err := addVigil(im, spec, libs); err != nil {
		return nil, err
	}
	if err := addBusybox(im, spec.Busybox, libs); err != nil {
		return nil, err
	}
	if spec.ModulesDir != "" {
		names := spec.Modules
		if names == nil {
			names = DefaultModules()
		}
		if err := addModules(im, spec.ModulesDir, names); err != nil {
			return nil, err
		}
	}
	if err := addUnits(im, spec); err != nil {
		return nil, err
	}
	for _, a := range spec.Adds {
		if err := im.AddProgram(a.Guest, a.Host, libs); err != nil {
			return nil, err
		}
	}
	for _, f := range spec.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := im.AddBytes(f.Path, f.Data, mode); err != nil {
			return nil, err
		}
	}
	return im, nil
}

func addSkeleton(im *Image) error {
	dirs := []struct {
		path string
		perm fs.FileMode
	}{
		{"/dev", 0o755}, {"/proc", 0o555}, {"/sys", 0o555}, {"/run", 0o755},
		{"/tmp", 0o777 | fs.ModeSticky}, {"/var/tmp", 0o777 | fs.ModeSticky},
		{"/root", 0o700}, {"/home/vigiltest", 0o755}, {"/mnt", 0o755},
		{"/usr/bin", 0o755}, {"/usr/sbin", 0o755}, {"/usr/lib", 0o755},
		{UnitDir, 0o755}, {"/etc/modules-load.d", 0o755},
	}
	for _, d := range dirs {
		if err := im.AddDir(d.path, d.perm); err != nil {
			return err
		}
	}
	if err := im.SetOwner("/home/vigiltest", 1000, 1000); err != nil {
		return err
	}
	files := []struct {
		path, data string
	}{
		{"/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nvigiltest:x:1000:1000:Vigil test user:/home/vigiltest:/bin/sh\n"},
		{"/etc/group", "root:x:0:\nvigiltest:x:1000:\n"},
		{"/etc/hostname", "vigil\n"},
		{"/etc/fstab", ""},
		{"/etc/os-release", "NAME=\"Vigil\"\nID=vigil\nPRETTY_NAME=\"Vigil test guest\"\nHOME_URL=\"https://example.invalid/vigil\"\n"},
		{"/etc/profile", "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\u@\\h:\\w\\$ '\n"},
	}
	for _, f := range files {
		if err := im.AddBytes(f.path, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// addVigil puts Vigil at /init, with /sbin/init and the names it acts
// under (poweroff, reboot, halt) as links to it, and initctl.
func addVigil(im *Image, spec Spec, libs *LibraryResolver) error {
	if spec.Vigil == "" || spec.Initctl == "" {
		return fmt.Errorf("image needs both the vigil and the initctl binary (got %q, %q)", spec.Vigil, spec.Initctl)
	}
	if err := im.AddProgram("/init", spec.Vigil, libs); err != nil {
		return fmt.Errorf("vigil binary: %w", err)
	}
	for _, name := range []string{"init", "vigil", "poweroff", "reboot", "halt"} {
		if err := im.AddSymlink("/sbin/"+name, "/init"); err != nil {
			return err
		}
	}
	if err := im.AddProgram("/sbin/initctl", spec.Initctl, libs); err != nil {
		return fmt.Errorf("initctl binary: %w", err)
	}
	return nil
}

// addBusybox adds busybox as /bin/busybox with a /bin link for each of its
// applets. Vigil's own poweroff/reboot/halt stay in /sbin, which comes
// first in PATH.
func addBusybox(im *Image, busybox string, libs *LibraryResolver) error {
	if busybox == "" {
		busybox = "/bin/busybox"
	}
	if _, err := os.Stat(busybox); err != nil {
		return fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets: %s --list: %w", busybox, err)
	}
	if err := im.AddProgram("/bin/busybox", busybox, libs); err != nil {
		return err
	}
	applets := strings.Fields(string(out))
	if len(applets) == 0 {
		return fmt.Errorf("%s --list printed no applets", busybox)
	}
	for _, applet := range applets {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := im.AddSymlink("/bin/"+applet, "busybox"); err != nil {
			return err
		}
	}
	return nil
}

func addModules(im *Image, dir string, names []string) error {
	set, err := ResolveModules(dir, names)
	if err != nil {
		return err
	}
	guestDir := "/lib/modules/" + set.Release
	for _, p := range set.Paths {
		if err := im.AddHostFile(path.Join(guestDir, p), filepath.Join(dir, p)); err != nil {
			return fmt.Errorf("kernel module: %w", err)
		}
	}
	if len(set.Compressed) > 0 {
		im.Note("%d kernel modules are compressed and carried as they are (%s ...): the loader must decompress them", len(set.Compressed), set.Compressed[0])
	}
	if err := im.AddBytes(guestDir+"/modules.dep", FormatModulesDep(set.Dep), 0o644); err != nil {
		return err
	}
	// modules.alias, cut to the modules carried, is what autoloading
	// resolves a hot-plugged device's MODALIAS through.
	if aliases, err := carriedAliases(filepath.Join(dir, "modules.alias"), set); err == nil {
		if err := im.AddBytes(guestDir+"/modules.alias", aliases, 0o644); err != nil {
			return err
		}
	}
	// modules.builtin lets the loader tell a built-in module from a
	// missing one.
	if _, err := os.Stat(filepath.Join(dir, "modules.builtin")); err == nil {
		if err := im.AddHostFile(guestDir+"/modules.builtin", filepath.Join(dir, "modules.builtin")); err != nil {
			return err
		}
	}
	conf := "# Written by vigil-vm: kernel modules the guest needs.\n" + strings.Join(set.Requested, "\n") + "\n"
	return im.AddBytes(ModulesLoadConf, []byte(conf), 0o644)
}

func addUnits(im *Image, spec Spec) error {
	if spec.ConsoleShell {
		data, err := defaultUnits.ReadFile("units/" + ConsoleShell)
		if err != nil {
			return fmt.Errorf("embedded unit %s: %w", ConsoleShell, err)
		}
		if err := im.AddBytes(path.Join(UnitDir, ConsoleShell), data, 0o644); err != nil {
			return err
		}
		if err := im.AddSymlink(path.Join(UnitDir, "multi-user.target.wants", ConsoleShell), "../"+ConsoleShell); err != nil {
			return err
		}
	}
	for _, dir := range spec.UnitDirs {
		if err := addUnitDir(im, dir); err != nil {
			return err
		}
	}
	return nil
}

// addUnitDir copies a unit directory tree, keeping symlinks (enablement
// links in *.wants/) as symlinks.
func addUnitDir(im *Image, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("--units %s: %w", dir, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		guest := path.Join(UnitDir, filepath.ToSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("--units %s: %w", dir, err)
		}
		switch {
		case st.IsDir():
			err = im.AddDir(guest, 0o755)
		case st.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = im.AddSymlink(guest, target)
			}
		case st.Mode().IsRegular():
			err = im.AddHostFile(guest, p)
		default:
			err = fmt.Errorf("%s: not a file, directory or symlink", p)
		}
		if err != nil {
			return fmt.Errorf("--units %s: %w", dir, err)
		}
	}
	return nil
}
