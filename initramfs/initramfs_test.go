package initramfs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// testSpec builds an image with the host's static busybox standing in for
// vigil and initctl, and the modules of an installed kernel if there is one.
func testSpec(t testing.TB) Spec {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed: /bin/busybox missing")
	}
	spec := Spec{Vigil: "/bin/busybox", Initctl: "/bin/busybox"}
	if dir := installedModulesDir(); dir != "" {
		spec.ModulesDir = dir
	}
	return spec
}

func installedModulesDir() string {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(dirs) == 0 {
		return ""
	}
	sort.Strings(dirs)
	return filepath.Dir(dirs[len(dirs)-1])
}

func writeImage(t testing.TB, im *Image, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := im.Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchiveReadByDebianCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	spec := testSpec(t)
	spec.Files = []File{{Path: "/etc/vigil/hello", Data: []byte("hello, guest\n"), Mode: 0o600}}
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.cpio")
	if err := im.WriteFile(archive, CompressNone); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cpio, "-t", "--quiet", "-F", archive).Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	listed := strings.Fields(string(out))
	var want []string
	for _, p := range im.Paths() {
		want = append(want, strings.TrimPrefix(p, "/"))
	}
	if strings.Join(listed, "\n") != strings.Join(want, "\n") {
		t.Fatalf("cpio -t lists %d entries, image has %d", len(listed), len(want))
	}
	dest := t.TempDir()
	extract := exec.Command(cpio, "-i", "--quiet", "--make-directories", "--no-absolute-filenames", "-F", archive)
	extract.Dir = dest
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dest, "etc/vigil/hello"))
	if err != nil || string(got) != "hello, guest\n" {
		t.Fatalf("extracted /etc/vigil/hello = %q, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dest, "etc/vigil/hello"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("extracted mode %v, %v; want 0600", st.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "bin/sh")); err != nil || target != "busybox" {
		t.Fatalf("bin/sh -> %q, %v; want busybox", target, err)
	}
	init, err := os.ReadFile(filepath.Join(dest, "init"))
	host, _ := os.ReadFile("/bin/busybox")
	if err != nil || !bytes.Equal(init, host) {
		t.Fatalf("extracted /init differs from the host binary (%v)", err)
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	entries := []Entry{
		{Name: "empty", Mode: typeRegular | 0o644},
		{Name: "etc", Mode: typeDir | 0o755},
		{Name: "etc/a", Mode: typeRegular | 0o644, Data: []byte("x")},
		{Name: "etc/bb", Mode: typeRegular | 0o600, UID: 1000, GID: 1000, Data: []byte("hello")},
		{Name: "etc/link", Mode: typeSymlink | 0o777, Data: []byte("a")},
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d not 4-aligned", buf.Len())
	}
	got, err := ReadArchive(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(entries))
	}
	for i := range entries {
		w, g := entries[i], got[i]
		if w.Name != g.Name || w.Mode != g.Mode || w.UID != g.UID || w.GID != g.GID || !bytes.Equal(w.Data, g.Data) {
			t.Errorf("entry %d: wrote %+v, read %+v", i, w, g)
		}
	}
	if err := WriteArchive(&bytes.Buffer{}, []Entry{entries[1], entries[1]}); err == nil {
		t.Error("duplicate entry accepted")
	}
	if err := WriteArchive(&bytes.Buffer{}, []Entry{{Name: "/abs", Mode: typeRegular}}); err == nil {
		t.Error("absolute entry name accepted")
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	spec := testSpec(t)
	spec.Adds = []Addition{{Host: "/usr/bin/env", Guest: "/usr/bin/env"}}
	for _, c := range []Compression{CompressNone, CompressGzip} {
		var sums [2][32]byte
		for i := range sums {
			im, err := Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			sums[i] = sha256.Sum256(writeImage(t, im, c))
		}
		if sums[0] != sums[1] {
			t.Errorf("%s: two builds of the same spec differ", c)
		}
	}
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(writeImage(t, im, CompressGzip)))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ReadArchive(zr)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.Mtime != 0 {
			t.Fatalf("%s: mtime %d, want 0", e.Name, e.Mtime)
		}
		if i > 0 && entries[i-1].Name >= e.Name {
			t.Fatalf("entries out of order: %s before %s", entries[i-1].Name, e.Name)
		}
	}
	spec.ModTime = 1700000000
	im, err = Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	entries, err = ReadArchive(bytes.NewReader(writeImage(t, im, CompressNone)))
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Mtime != 1700000000 {
		t.Fatalf("mtime %d, want SOURCE_DATE_EPOCH-style 1700000000", entries[0].Mtime)
	}
}

func TestImageLayout(t *testing.T) {
	spec := testSpec(t)
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ path, link string }{
		{"/sbin/init", "/init"}, {"/sbin/poweroff", "/init"}, {"/sbin/reboot", "/init"},
		{"/sbin/halt", "/init"}, {"/bin/sh", "busybox"}, {"/bin/poweroff", "busybox"},
	} {
		e, ok := im.Lookup(want.path)
		if !ok || !e.IsSymlink() || string(e.Data) != want.link {
			t.Errorf("%s: %+v, want symlink to %s", want.path, e, want.link)
		}
	}
	for _, p := range []string{"/init", "/sbin/initctl", "/bin/busybox", "/etc/passwd", "/etc/group", "/etc/hostname", "/etc/fstab", "/etc/os-release"} {
		if e, ok := im.Lookup(p); !ok || !e.IsRegular() {
			t.Errorf("%s missing or not a regular file", p)
		}
	}
	if e, _ := im.Lookup("/init"); e.Mode&0o111 == 0 {
		t.Errorf("/init not executable: %o", e.Mode)
	}
	if e, _ := im.Lookup("/etc/passwd"); !strings.Contains(string(e.Data), "vigiltest:x:1000:1000:") {
		t.Errorf("/etc/passwd lacks vigiltest: %q", e.Data)
	}
	if e, _ := im.Lookup("/home/vigiltest"); e.UID != 1000 {
		t.Errorf("/home/vigiltest owned by %d", e.UID)
	}
	if _, ok := im.Lookup("/etc/vigil/units/console-shell.service"); ok {
		t.Error("console shell present without ConsoleShell")
	}
	spec.ConsoleShell = true
	im, err = Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	unit, ok := im.Lookup("/etc/vigil/units/console-shell.service")
	if !ok {
		t.Fatal("console-shell.service missing with ConsoleShell")
	}
	if e, ok := im.Lookup("/etc/vigil/units/multi-user.target.wants/console-shell.service"); !ok || string(e.Data) != "../console-shell.service" {
		t.Errorf("console shell not enabled: %+v", e)
	}
	var parsed struct {
		Unit    struct{ Description string }
		Service map[string]any
		Install struct {
			WantedBy []string `toml:"wanted-by"`
		}
	}
	if _, err := toml.Decode(string(unit.Data), &parsed); err != nil {
		t.Fatalf("console-shell.service is not valid TOML: %v", err)
	}
	if parsed.Service["exec-start"] != "/bin/sh -l" || parsed.Service["tty-path"] != "/dev/console" || parsed.Install.WantedBy[0] != "multi-user.target" {
		t.Errorf("console-shell.service parsed as %+v", parsed)
	}
}

func TestUnitDirIsCopiedWithLinks(t *testing.T) {
	spec := testSpec(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.service"), []byte("[service]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../a.service", filepath.Join(dir, "multi-user.target.wants/a.service")); err != nil {
		t.Fatal(err)
	}
	spec.UnitDirs = []string{dir}
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := im.Lookup("/etc/vigil/units/a.service"); !ok || !e.IsRegular() {
		t.Error("a.service not copied")
	}
	if e, ok := im.Lookup("/etc/vigil/units/multi-user.target.wants/a.service"); !ok || string(e.Data) != "../a.service" {
		t.Errorf("enablement link: %+v", e)
	}
}

func TestELFClosureOfSystemctl(t *testing.T) {
	libs, err := NewLibraryResolver("")
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"/usr/bin/systemctl", "/usr/bin/journalctl"} {
		if _, err := os.Stat(prog); err != nil {
			t.Skipf("%s not installed", prog)
		}
		c, err := libs.Closure(prog)
		if err != nil {
			t.Fatal(err)
		}
		if c.Interpreter != "/lib64/ld-linux-x86-64.so.2" {
			t.Errorf("%s: interpreter %q", prog, c.Interpreter)
		}
		got := map[string]string{}
		for _, lib := range c.Libraries {
			got[filepath.Base(lib)] = lib
		}
		// Closed: every library's own DT_NEEDED is in the set.
		for _, lib := range append([]string{prog}, c.Libraries...) {
			f, err := elf.Open(lib)
			if err != nil {
				t.Fatal(err)
			}
			needed, _ := f.DynString(elf.DT_NEEDED)
			f.Close()
			for _, n := range needed {
				if _, ok := got[n]; !ok && n != filepath.Base(c.Interpreter) {
					t.Errorf("%s: %s needs %s, not in the closure", prog, lib, n)
				}
			}
		}
		// The loader itself agrees (ldd resolves through ld.so.cache).
		if out, err := exec.Command("ldd", prog).Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				name, rest, ok := strings.Cut(strings.TrimSpace(line), " => ")
				if !ok {
					continue
				}
				if _, found := got[name]; !found {
					t.Errorf("%s: ldd resolves %s (%s), closure lacks it", prog, name, rest)
				}
			}
		}
		if shared, ok := got["libsystemd-shared-252.so"]; ok && shared != "/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so" {
			t.Errorf("%s: libsystemd-shared resolved to %s, want the RUNPATH dir", prog, shared)
		}
		if prog == "/usr/bin/journalctl" && got["libsystemd-shared-252.so"] == "" {
			t.Errorf("journalctl closure lacks libsystemd-shared-252.so: %v", c.Libraries)
		}
	}
	spec := testSpec(t)
	spec.Adds = []Addition{{Host: "/usr/bin/systemctl", Guest: "/usr/bin/systemctl"}, {Host: "/usr/bin/journalctl", Guest: "/usr/bin/journalctl"}}
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/bin/systemctl", "/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so"} {
		if _, ok := im.Lookup(p); !ok {
			t.Errorf("image lacks %s", p)
		}
	}
}

func TestStaticProgramHasNoClosure(t *testing.T) {
	libs, err := NewLibraryResolver("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := libs.Closure("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if c.Interpreter != "" || len(c.Libraries) != 0 {
		t.Errorf("static busybox: closure %+v", c)
	}
	c, err = libs.Closure("/etc/passwd")
	if err != nil || len(c.Libraries) != 0 {
		t.Errorf("text file: closure %+v, %v", c, err)
	}
}

func TestResolveModulesOnInstalledKernel(t *testing.T) {
	dir := installedModulesDir()
	if dir == "" {
		t.Skip("no /lib/modules/*/modules.dep: install linux-image-amd64")
	}
	set, err := ResolveModules(dir, DefaultModules())
	if err != nil {
		t.Fatal(err)
	}
	carried := map[string]bool{}
	for _, p := range set.Paths {
		carried[ModuleName(p)] = true
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("carried module missing on host: %v", err)
		}
	}
	// Read the host's modules.dep independently: every carried module's
	// dependencies are carried too, and each requested one is there.
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := ParseModulesDep(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range DefaultModules() {
		if _, inDep := all[name]; inDep && !carried[name] {
			t.Errorf("requested module %s not carried", name)
		}
	}
	for name := range carried {
		for _, dep := range all[name].Deps {
			if !carried[ModuleName(dep)] {
				t.Errorf("%s needs %s, not carried", name, dep)
			}
		}
	}
	if _, ok := all["ext4"]; ok {
		for _, want := range []string{"jbd2", "mbcache"} {
			if !carried[want] {
				t.Errorf("ext4's dependency %s not carried", want)
			}
		}
	}
	filtered, err := ParseModulesDep(bytes.NewReader(FormatModulesDep(set.Dep)))
	if err != nil {
		t.Fatal(err)
	}
	if len(filtered) != len(set.Paths) {
		t.Errorf("filtered modules.dep has %d lines for %d modules", len(filtered), len(set.Paths))
	}
	if _, err := ResolveModules(dir, []string{"no_such_module_xyz"}); err == nil || !strings.Contains(err.Error(), "no_such_module_xyz") {
		t.Errorf("unknown module: err %v", err)
	}
	if _, err := ResolveModules(filepath.Join(t.TempDir(), "6.6.6-none"), DefaultModules()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing modules dir: err %v", err)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"kernel/fs/ext4/ext4.ko.xz":                   "ext4",
		"kernel/net/9p/9pnet_virtio.ko.zst":           "9pnet_virtio",
		"virtio_pci":                                  "virtio_pci",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompressedModulesAreCarriedAsTheyAre(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "6.9.9-test")
	if err := os.MkdirAll(filepath.Join(dir, "kernel/fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	dep := "kernel/fs/a.ko.xz: kernel/fs/b.ko.zst\nkernel/fs/b.ko.zst:\nkernel/fs/c.ko:\n"
	for path, data := range map[string]string{"modules.dep": dep, "kernel/fs/a.ko.xz": "A", "kernel/fs/b.ko.zst": "B", "kernel/fs/c.ko": "C"} {
		if err := os.WriteFile(filepath.Join(dir, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := testSpec(t)
	spec.ModulesDir, spec.Modules = dir, []string{"a"}
	im, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/lib/modules/6.9.9-test/kernel/fs/a.ko.xz", "/lib/modules/6.9.9-test/kernel/fs/b.ko.zst"} {
		if _, ok := im.Lookup(p); !ok {
			t.Errorf("%s not carried", p)
		}
	}
	if _, ok := im.Lookup("/lib/modules/6.9.9-test/kernel/fs/c.ko"); ok {
		t.Error("unrequested module carried")
	}
	if notes := im.Notes(); len(notes) != 1 || !strings.Contains(notes[0], "compressed") {
		t.Errorf("notes %q, want one about compressed modules", notes)
	}
	conf, _ := im.Lookup(ModulesLoadConf)
	if !strings.Contains(string(conf.Data), "\na\n") {
		t.Errorf("modules-load.d: %q", conf.Data)
	}
}

func TestBadInput(t *testing.T) {
	spec := testSpec(t)
	spec.Adds = []Addition{{Host: "/no/such/file", Guest: "/x"}}
	if _, err := Build(spec); err == nil || !strings.Contains(err.Error(), "/no/such/file") {
		t.Errorf("missing --add file: %v", err)
	}
	spec = testSpec(t)
	spec.Vigil = ""
	if _, err := Build(spec); err == nil {
		t.Error("no vigil binary accepted")
	}
	if _, err := ParseAddition("/bin/true:relative"); err == nil {
		t.Error("relative guest path accepted")
	}
	if a, err := ParseAddition("/bin/true"); err != nil || a.Guest != "/bin/true" {
		t.Errorf("ParseAddition(/bin/true) = %+v, %v", a, err)
	}
	if a, err := ParseAddition("/bin/true:/usr/bin/yes"); err != nil || a.Guest != "/usr/bin/yes" {
		t.Errorf("ParseAddition = %+v, %v", a, err)
	}
	im := NewImage(0)
	if err := im.AddBytes("/etc/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := im.AddBytes("/etc/x/y", nil, 0o644); err == nil {
		t.Error("file under a file accepted")
	}
	if err := im.AddDir("/etc", 0o755); err != nil {
		t.Errorf("re-adding a directory: %v", err)
	}
	if err := im.AddBytes("/etc", nil, 0o644); err == nil {
		t.Error("directory replaced by a file")
	}
	if err := im.AddBytes("/", nil, 0o644); err == nil {
		t.Error("root accepted as a file")
	}
	if _, err := ReadArchive(strings.NewReader("070701zzzz")); err == nil {
		t.Error("truncated archive accepted")
	}
}

func BenchmarkBuild(b *testing.B) {
	spec := testSpec(b)
	if _, err := os.Stat("/usr/bin/systemctl"); err == nil {
		spec.Adds = []Addition{{Host: "/usr/bin/systemctl", Guest: "/usr/bin/systemctl"}}
	}
	var size int
	for b.Loop() {
		im, err := Build(spec)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := im.Write(&buf, CompressNone); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size)/1e6, "MB/image")
}

func TestImageCarriesAliasesOfItsModules(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "modules.alias"), []byte("# comment\nalias virtio:d00000002v* virtio_blk\nalias pci:v00001AF4d* virtio_pci\nalias usb:v* usbcore\n"), 0o644)
	set := &ModuleSet{Paths: []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio_pci.ko"}}
	got, err := carriedAliases(filepath.Join(dir, "modules.alias"), set)
	if err != nil {
		t.Fatal(err)
	}
	want := "alias virtio:d00000002v* virtio_blk\nalias pci:v00001AF4d* virtio_pci\n"
	if string(got) != want {
		t.Errorf("aliases %q, want %q", got, want)
	}
}
