package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// installedRelease returns a kernel release with a modules.dep on this
// machine (the running one if it has modules, else any installed one).
func installedRelease(t testing.TB) string {
	t.Helper()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		rel := unix.ByteSliceToString(uts.Release[:])
		if _, err := os.Stat(filepath.Join("/lib/modules", rel, "modules.dep")); err == nil {
			return rel
		}
	}
	deps, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(deps) == 0 {
		t.Skip("no /lib/modules/*/modules.dep installed (linux-image-amd64 not installed yet?)")
	}
	return filepath.Base(filepath.Dir(deps[0]))
}

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name)
	}
	return out
}

func indexOf(list []string, name string) int {
	for i, n := range list {
		if n == name {
			return i
		}
	}
	return -1
}

func TestPlanExt4RealIndex(t *testing.T) {
	l := &Loader{KernelRelease: installedRelease(t)}
	steps, err := l.Plan("ext4")
	if err != nil {
		t.Fatal(err)
	}
	order := names(steps)
	if order[len(order)-1] != "ext4" {
		t.Fatalf("ext4 is not last: %v", order)
	}
	for _, dep := range []string{"crc16", "mbcache", "jbd2"} {
		if i := indexOf(order, dep); i < 0 || i > len(order)-1 {
			t.Errorf("dependency %s missing from %v", dep, order)
		}
	}
	for _, s := range steps {
		if s.Name != "ext4" && s.Name != "jbd2" && s.Name != "crc16" && s.Name != "mbcache" && !s.Soft {
			t.Errorf("unexpected hard step %s", s.Name)
		}
		if !filepath.IsAbs(s.Path) {
			t.Errorf("%s: path %q not absolute", s.Name, s.Path)
		}
		if _, err := os.Stat(s.Path); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	t.Logf("ext4 plan: %v", order)
}

func TestPlanOrdersTransitiveDependencies(t *testing.T) {
	rel := installedRelease(t)
	l := &Loader{KernelRelease: rel}
	// 9p needs fscache, which itself needs netfs: netfs must come first.
	steps, err := l.Plan("9p")
	if err != nil {
		t.Fatal(err)
	}
	order := names(steps)
	if !(indexOf(order, "netfs") < indexOf(order, "fscache") && indexOf(order, "fscache") < indexOf(order, "9p")) ||
		indexOf(order, "netfs") < 0 || indexOf(order, "9pnet") < 0 {
		t.Fatalf("9p plan order wrong: %v", order)
	}
}

// TestPlanEveryModuleRespectsModulesDep checks, for every module of the
// installed kernel, that each step comes after all of its own dependencies.
func TestPlanEveryModuleRespectsModulesDep(t *testing.T) {
	rel := installedRelease(t)
	f, err := os.Open(filepath.Join("/lib/modules", rel, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps, err := parseModulesDep(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) < 1000 {
		t.Fatalf("only %d modules parsed from modules.dep", len(deps))
	}
	l := &Loader{KernelRelease: rel}
	for name := range deps {
		steps, err := l.Plan(name)
		if err != nil {
			t.Fatalf("plan %s: %v", name, err)
		}
		pos := make(map[string]int)
		for i, s := range steps {
			pos[s.Name] = i
		}
		if steps[len(steps)-1].Name != name {
			t.Fatalf("%s not last in its plan %v", name, names(steps))
		}
		for i, s := range steps {
			for _, d := range deps[s.Name].Deps {
				dn := ModuleName(d)
				if p, ok := pos[dn]; !ok || p > i {
					t.Fatalf("plan for %s: %s at %d needs %s (at %d, present %v)", name, s.Name, i, dn, p, ok)
				}
			}
		}
	}
}

func TestResolveRealModalias(t *testing.T) {
	l := &Loader{KernelRelease: installedRelease(t)}
	cases := map[string]string{
		"virtio:d00000002v00001AF4": "virtio_blk",
		"virtio:d00000001v00001AF4": "virtio_net",
		"fs-ext4":                   "ext4",
		"virtio-blk":                "virtio_blk",
	}
	for alias, want := range cases {
		got, err := l.Resolve(alias)
		if err != nil {
			t.Errorf("Resolve(%s): %v", alias, err)
			continue
		}
		if indexOf(got, want) < 0 {
			t.Errorf("Resolve(%s) = %v, want %s among them", alias, got, want)
		}
	}
	if _, err := l.Resolve("virtio:d7fffffffv00000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown modalias: err = %v, want ErrNotFound", err)
	}
}

func TestBuiltinModuleIsNoOp(t *testing.T) {
	rel := installedRelease(t)
	data, err := os.ReadFile(filepath.Join("/lib/modules", rel, "modules.builtin"))
	if err != nil {
		t.Skip(err)
	}
	first := ModuleName(strings.Fields(string(data))[0])
	l := &Loader{KernelRelease: rel}
	steps, err := l.Plan(first)
	if err != nil || len(steps) != 1 || !steps[0].Builtin {
		t.Fatalf("Plan(%s) = %+v, %v; want one builtin step", first, steps, err)
	}
	// Built-in: Load succeeds without touching the kernel.
	if err := l.Load(first); err != nil {
		t.Fatalf("Load(builtin %s) = %v", first, err)
	}
}

// fakeTree writes a module tree under a temp root.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestConfigOptionsBlacklistAliasSoftdep(t *testing.T) {
	const md = "lib/modules/9.9.9/"
	root := fakeTree(t, map[string]string{
		md + "modules.dep": "kernel/a/top-mod.ko: kernel/a/mid.ko kernel/a/base.ko\n" +
			"kernel/a/mid.ko: kernel/a/base.ko\n" +
			"kernel/a/base.ko:\n" +
			"kernel/a/bad.ko:\n" +
			"kernel/a/helper.ko.xz:\n",
		md + "modules.alias":   "alias pci:v00001234d*sv*sd*bc*sc*i* bad\nalias pci:v00001234d*sv*sd*bc*sc*i* base\nalias foo-[0-9] mid\n",
		md + "modules.builtin": "kernel/x/builtin_one.ko\n",
		md + "modules.softdep": "softdep top_mod pre: helper\n",
		"etc/modprobe.d/a.conf": "options top-mod answer=42 name=x # comment\n" +
			"blacklist bad\n" +
			"alias myalias top_mod\n" +
			"install mid /bin/false\n",
		"lib/modprobe.d/a.conf": "options top_mod shadowed=1\n",
		"lib/modprobe.d/b.conf": "options base \\\n  level=3\n",
	})
	l := &Loader{Root: root, KernelRelease: "9.9.9", KernelCmdline: `quiet top_mod.extra="a b" base.flag other.x=1`}
	steps, err := l.Plan("top-mod")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(steps), []string{"helper", "base", "mid", "top_mod"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	if !steps[0].Soft || steps[1].Soft {
		t.Errorf("softness wrong: %+v", steps)
	}
	if got := steps[3].Options; got != `answer=42 name=x extra="a b"` {
		t.Errorf("top_mod options = %q (etc/ must hide lib/ a.conf)", got)
	}
	if got := steps[1].Options; got != "level=3 flag" {
		t.Errorf("base options = %q", got)
	}
	if got := steps[3].Path; got != filepath.Join(root, md, "kernel/a/top-mod.ko") {
		t.Errorf("path = %s", got)
	}
	mods, err := l.Resolve("pci:v00001234d00005678sv0sd0bc01sc02i03")
	if err != nil || !reflect.DeepEqual(mods, []string{"base"}) {
		t.Errorf("alias with blacklist = %v, %v; want [base]", mods, err)
	}
	if mods, err := l.Resolve("bad"); err != nil || !reflect.DeepEqual(mods, []string{"bad"}) {
		t.Errorf("explicit blacklisted name = %v, %v; want [bad]", mods, err)
	}
	if mods, _ := l.Resolve("myalias"); !reflect.DeepEqual(mods, []string{"top_mod"}) {
		t.Errorf("config alias = %v", mods)
	}
	if mods, _ := l.Resolve("foo-7"); !reflect.DeepEqual(mods, []string{"mid"}) {
		t.Errorf("set alias = %v", mods)
	}
	if _, err := l.Resolve("foo-x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("foo-x: %v", err)
	}
	if err := l.Load("builtin-one"); err != nil {
		t.Errorf("builtin: %v", err)
	}
	if _, err := l.Plan("nonesuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Plan(nonesuch) = %v", err)
	}
	if errs := l.LoadAll([]string{"builtin_one", "nonesuch"}); len(errs) != 1 || !errors.Is(errs[0], ErrNotFound) {
		t.Errorf("LoadAll errors = %v", errs)
	}
}

func TestMissingIndex(t *testing.T) {
	l := &Loader{Root: t.TempDir(), KernelRelease: "0.0"}
	err := l.Load("ext4")
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "modules.dep") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadGarbageModuleIsRejected hands the running kernel a file that is not
// a module: the kernel must refuse it (ENOEXEC, or ENOSYS on a kernel built
// without module support) and the error must name the file.
func TestLoadGarbageModuleIsRejected(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := fakeTree(t, map[string]string{
		"lib/modules/1.0/modules.dep":                  "kernel/vigil_not_a_module.ko:\n",
		"lib/modules/1.0/kernel/vigil_not_a_module.ko": "this is not an ELF file\n",
	})
	l := &Loader{Root: root, KernelRelease: "1.0"}
	err := l.Load("vigil_not_a_module")
	if err == nil {
		t.Fatal("kernel accepted garbage as a module")
	}
	if !strings.Contains(err.Error(), "vigil_not_a_module.ko") {
		t.Errorf("error does not name the file: %v", err)
	}
	if !errors.Is(err, unix.ENOEXEC) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EKEYREJECTED) {
		t.Errorf("unexpected errno: %v", err)
	}
	t.Logf("kernel said: %v", err)
}

// TestLoadAlreadyLoaded exercises the EEXIST path on a kernel with modules.
func TestLoadAlreadyLoaded(t *testing.T) {
	data, err := os.ReadFile("/proc/modules")
	if err != nil || len(data) == 0 {
		t.Skip("running kernel has no loadable modules")
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	rel := unix.ByteSliceToString(uts.Release[:])
	if _, err := os.Stat(filepath.Join("/lib/modules", rel, "modules.dep")); err != nil {
		t.Skip("no modules.dep for the running kernel")
	}
	first := strings.Fields(string(data))[0]
	if err := (&Loader{}).Load(first); err != nil {
		t.Fatalf("Load(%s) of a loaded module: %v", first, err)
	}
}

func TestReadModulesLoadD(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"etc/modules-load.d/b.conf":     "# comment\n; other comment\n\n  virtio_blk  \n9p\n",
		"usr/lib/modules-load.d/b.conf": "shadowed\n",
		"usr/lib/modules-load.d/a.conf": "ext4\n",
		"run/modules-load.d/c.conf":     "autofs4\n",
		"run/modules-load.d/ignored":    "notconf\n",
		"usr/lib/modules-load.d/d.conf": "masked\n",
	})
	if err := os.Symlink("/dev/null", filepath.Join(root, "etc/modules-load.d/d.conf")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModulesLoadD(ModulesLoadDirs(root)...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ext4", "virtio_blk", "9p", "autofs4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Real directories of this machine must read without error.
	if _, err := ReadModulesLoadD(); err != nil {
		t.Errorf("host modules-load.d: %v", err)
	}
}

func TestFromCmdline(t *testing.T) {
	got := FromCmdline(`quiet modules-load=a,b rd.modules-load="c" x.y=1`)
	if !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v", got)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko":           "ext4",
		"kernel/drivers/x/intel-uncore.ko": "intel_uncore",
		"a/b/c.ko.xz":                      "c",
		"d.ko.zst":                         "d",
		"virtio-blk":                       "virtio_blk",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%s) = %s, want %s", in, got, want)
		}
	}
}

func BenchmarkLoadIndex(b *testing.B) {
	rel := installedRelease(b)
	for b.Loop() {
		l := &Loader{KernelRelease: rel}
		if _, err := l.Resolve("virtio:d00000002v00001AF4"); err != nil {
			b.Fatal(err)
		}
	}
}
