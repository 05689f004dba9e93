package unitfile

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnitCloneable: every field of Unit can be copied deeply; a field
// clone cannot copy (an interface, a func, an unexported reference) would
// silently turn the reuse of decoded units off.
func TestUnitCloneable(t *testing.T) {
	if u := unitCopyPlan().unsupported; len(u) != 0 {
		t.Fatalf("Unit.clone cannot copy: %s", strings.Join(u, "; "))
	}
}

// populate sets every field reachable from v to a non-zero value: slices
// and maps get two elements, pointers a value.
func populate(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x" + strings.Repeat("y", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(7 + depth))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(7 + depth))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		populate(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			populate(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			populate(k, depth+i+1)
			e := reflect.New(v.Type().Elem()).Elem()
			populate(e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				populate(v.Field(i), depth)
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			populate(v.Index(i), depth+1)
		}
	}
}

// disjoint fails if a and b share a pointer, a slice's array or a map.
func disjoint(t *testing.T, where string, a, b reflect.Value) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return
		}
		// Zero-size values (TargetSection) all live at one address.
		if a.Pointer() == b.Pointer() && a.Type().Elem().Size() > 0 {
			t.Errorf("%s: the copy shares the pointer", where)
			return
		}
		disjoint(t, where, a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() == 0 {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: the copy shares the slice's array", where)
			return
		}
		for i := range a.Len() {
			disjoint(t, where+"[]", a.Index(i), b.Index(i))
		}
	case reflect.Map:
		if a.Len() == 0 {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: the copy shares the map", where)
			return
		}
		for it := a.MapRange(); it.Next(); {
			disjoint(t, where+"[k]", it.Value(), b.MapIndex(it.Key()))
		}
	case reflect.Struct:
		for i := range a.NumField() {
			disjoint(t, where+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Array:
		for i := range a.Len() {
			disjoint(t, where+"[n]", a.Index(i), b.Index(i))
		}
	}
}

// TestUnitCloneIsDeep: a clone of a unit with every field set equals it
// and shares no pointer, slice or map with it, so a behaviour changing its
// configuration cannot change the kept decoding.
func TestUnitCloneIsDeep(t *testing.T) {
	var u Unit
	populate(reflect.ValueOf(&u).Elem(), 0)
	if u.Service == nil || len(u.Service.ExecStart) == 0 || len(u.Service.ExecStart[0].Argv) == 0 || u.Service.Limits == nil {
		t.Fatal("populate left references unset")
	}
	c := u.clone()
	if !reflect.DeepEqual(&u, c) {
		t.Fatal("the clone differs from the unit")
	}
	disjoint(t, "Unit", reflect.ValueOf(&u).Elem(), reflect.ValueOf(c).Elem())
	// Nil and empty stay distinct, as a fresh decoding makes them.
	empty := &Unit{Aliases: []string{}, Service: &ServiceSection{}}
	ec := empty.clone()
	if ec.Aliases == nil || ec.DropIns != nil || ec.Socket != nil || ec.Service == nil || ec.Service.Limits != nil {
		t.Fatalf("clone changed nil or empty values: %+v", ec)
	}
}

// reuseDir is a unit directory for the reuse tests: cacheTestDir, and a
// service that names its executable without a path and its host name.
func reuseDir(t *testing.T) (Paths, string, Context) {
	paths, dir := cacheTestDir(t)
	bin := filepath.Join(dir, "..", filepath.Base(dir)+"-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	write(t, dir, "c.service", "[unit]\ndescription = \"on %H\"\n[service]\nexec-start = \"vigil-test-tool --flag\"\n")
	ctx := testContext()
	ctx.ExecSearchPath = []string{bin}
	return paths, dir, ctx
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scanLikePlain scans with fc, checks that the result is what a plain
// Scan gives, and returns it with the units the scan decoded.
func scanLikePlain(t *testing.T, paths Paths, ctx Context, fc *FileCache) (map[string]*Unit, []string) {
	t.Helper()
	got, problems := ScanCached(paths, ctx, fc)
	want, wantProblems := Scan(paths, ctx)
	if !reflect.DeepEqual(got, want) {
		for name, u := range want {
			if !reflect.DeepEqual(got[name], u) {
				t.Errorf("%s: cached scan gives\n%+v\nplain Scan\n%+v", name, got[name], u)
			}
		}
		t.FailNow()
	}
	if !reflect.DeepEqual(problems, wantProblems) {
		t.Fatalf("cached scan problems %v, plain Scan %v", problems, wantProblems)
	}
	return got, fc.Decoded()
}

// TestScanReusesUnchangedUnits: a second scan decodes nothing; a changed
// fragment, drop-in or template re-decodes exactly the units that apply
// it, and the results always equal a plain Scan's.
func TestScanReusesUnchangedUnits(t *testing.T) {
	paths, dir, ctx := reuseDir(t)
	fc := agedCache()
	_, decoded := scanLikePlain(t, paths, ctx, fc)
	if !slices.Contains(decoded, "a.service") || !slices.Contains(decoded, "t@x.service") {
		t.Fatalf("first scan decoded %v", decoded)
	}
	if _, decoded := scanLikePlain(t, paths, ctx, fc); len(decoded) != 0 {
		t.Fatalf("nothing changed, yet the scan decoded %v", decoded)
	}
	steps := []struct {
		what, file, text string
		want             []string
	}{
		{"a drop-in", "a.service.d/10-env.toml", "[service]\nenvironment = { X = \"22\" }\n", []string{"a.service"}},
		{"a new drop-in", "a.service.d/20-desc.toml", "[unit]\ndescription = \"A2\"\n", []string{"a.service"}},
		{"a fragment", "b.target", "[unit]\ndescription = \"B, longer\"\n", []string{"b.target"}},
		{"a template", "t@.service", "[service]\nexec-start = \"/bin/echo %i %n\"\n", []string{"t@.service", "t@x.service"}},
		{"a type drop-in", "target.d/50-x.toml", "[unit]\ndocumentation = \"man:x\"\n", []string{"b.target"}},
		{"a file that now parses", "bad.service", "[service]\nexec-start = \"/bin/true\"\n", []string{"bad.service"}},
	}
	for _, s := range steps {
		write(t, dir, s.file, s.text)
		if _, decoded := scanLikePlain(t, paths, ctx, fc); !slices.Equal(decoded, s.want) {
			t.Fatalf("after changing %s (%s) the scan decoded %v, want %v", s.what, s.file, decoded, s.want)
		}
		if _, decoded := scanLikePlain(t, paths, ctx, fc); len(decoded) != 0 {
			t.Fatalf("after %s: the next scan decoded %v again", s.what, decoded)
		}
	}
	if err := os.Remove(filepath.Join(dir, "a.service.d", "20-desc.toml")); err != nil {
		t.Fatal(err)
	}
	units, decoded := scanLikePlain(t, paths, ctx, fc)
	if !slices.Equal(decoded, []string{"a.service"}) || units["a.service"].Unit.Description != "A" {
		t.Fatalf("a removed drop-in: decoded %v, description %q", decoded, units["a.service"].Unit.Description)
	}
}

// TestScanReuseSeesLinksAndAliases: .wants links and alias symlinks are
// not files of the unit, yet a reused decoding has the new ones.
func TestScanReuseSeesLinksAndAliases(t *testing.T) {
	paths, dir, ctx := reuseDir(t)
	fc := agedCache()
	scanLikePlain(t, paths, ctx, fc)
	if err := os.Symlink(filepath.Join(dir, "c.service"), filepath.Join(dir, "b.target.wants", "c.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "b.target.requires"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "t@.service"), filepath.Join(dir, "b.target.requires", "t@y.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.service"), filepath.Join(dir, "other-a.service")); err != nil {
		t.Fatal(err)
	}
	units, decoded := scanLikePlain(t, paths, ctx, fc)
	if !slices.Contains(units["b.target"].Unit.Wants, "c.service") || !slices.Contains(units["b.target"].Unit.Requires, "t@y.service") {
		t.Fatalf("new links not seen: wants %v, requires %v", units["b.target"].Unit.Wants, units["b.target"].Unit.Requires)
	}
	if !slices.Contains(units["a.service"].Aliases, "other-a.service") {
		t.Fatalf("new alias not seen: %v", units["a.service"].Aliases)
	}
	// Only the new instance is decoded: the links changed no unit's files.
	if !slices.Equal(decoded, []string{"t@y.service"}) {
		t.Fatalf("decoded %v, want only the new instance t@y.service", decoded)
	}
	if err := os.Remove(filepath.Join(dir, "b.target.wants", "c.service")); err != nil {
		t.Fatal(err)
	}
	units, _ = scanLikePlain(t, paths, ctx, fc)
	if slices.Contains(units["b.target"].Unit.Wants, "c.service") {
		t.Fatal("a removed .wants link is still a dependency")
	}
}

// TestScanReuseFollowsTheContext: a unit whose values depend on the host
// (%H) is decoded again when the host name changes.
func TestScanReuseFollowsTheContext(t *testing.T) {
	paths, _, ctx := reuseDir(t)
	fc := agedCache()
	scanLikePlain(t, paths, ctx, fc)
	ctx.Hostname = "renamed"
	units, decoded := scanLikePlain(t, paths, ctx, fc)
	if got := units["c.service"].Unit.Description; got != "on renamed" {
		t.Fatalf("description after the host name changed: %q", got)
	}
	if !slices.Contains(decoded, "c.service") {
		t.Fatalf("decoded %v, want c.service among them", decoded)
	}
	ctx.ExecSearchPath = append(ctx.ExecSearchPath, "/nonexistent")
	if _, decoded := scanLikePlain(t, paths, ctx, fc); !slices.Contains(decoded, "c.service") {
		t.Fatalf("another search path: decoded %v", decoded)
	}
}

// TestScanReuseFollowsExecutables: a command named without a path is
// resolved in the search path, and a missing one warned about; both follow
// the executable appearing and going away with no unit file changed.
func TestScanReuseFollowsExecutables(t *testing.T) {
	paths, _, ctx := reuseDir(t)
	bin := ctx.ExecSearchPath[0]
	tool := filepath.Join(bin, "vigil-test-tool")
	fc := agedCache()
	warned := func(u *Unit) bool {
		for _, p := range u.Problems {
			if strings.Contains(p.Msg, "vigil-test-tool") {
				return true
			}
		}
		return false
	}
	units, _ := scanLikePlain(t, paths, ctx, fc)
	if !warned(units["c.service"]) {
		t.Fatalf("no warning about the missing executable: %v", units["c.service"].Problems)
	}
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	units, decoded := scanLikePlain(t, paths, ctx, fc)
	c := units["c.service"]
	if warned(c) || c.Service.ExecStart[0].Path != tool {
		t.Fatalf("executable added: path %q, problems %v", c.Service.ExecStart[0].Path, c.Problems)
	}
	if !slices.Equal(decoded, []string{"c.service"}) {
		t.Fatalf("decoded %v, want c.service", decoded)
	}
	if err := os.Remove(tool); err != nil {
		t.Fatal(err)
	}
	if units, _ := scanLikePlain(t, paths, ctx, fc); !warned(units["c.service"]) {
		t.Fatal("executable removed: no warning")
	}
}

// TestScanReuseGivesOwnCopies: what a caller does to the units a scan gave
// does not reach the next scan's units.
func TestScanReuseGivesOwnCopies(t *testing.T) {
	paths, _, ctx := reuseDir(t)
	fc := agedCache()
	scanLikePlain(t, paths, ctx, fc)
	// The second scan hands out reused decodings.
	units, _ := scanLikePlain(t, paths, ctx, fc)
	a := units["a.service"]
	a.Unit.Description = "changed by a behaviour"
	a.Service.ExecStart[0].Argv[0] = "/changed"
	a.Service.Environment = append(a.Service.Environment, "CHANGED=1")
	a.Service.Environment[0] = "X=changed"
	a.Aliases[0] = "changed.service"
	a.Unit.Wants = append(a.Unit.Wants, "changed.service")
	units, decoded := scanLikePlain(t, paths, ctx, fc)
	if len(decoded) != 0 {
		t.Fatalf("decoded %v, want every unit reused", decoded)
	}
	if units["a.service"] == a {
		t.Fatal("the scan handed out the same unit twice")
	}
}

// BenchmarkUnitClone is the copy every reload makes of each unit whose
// decoding it reuses.
func BenchmarkUnitClone(b *testing.B) {
	dir := b.TempDir()
	text := "[unit]\ndescription = \"S\"\nafter = \"a.target b.target\"\n[service]\nexec-start = \"/bin/true x y\"\nexec-stop = \"/bin/true\"\nenvironment = { A = \"1\", B = \"2\" }\n[resources]\ncpu-weight = 100\n"
	if err := os.WriteFile(filepath.Join(dir, "s.service"), []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	u, err := Load(Paths{dir}, "s.service", testContext())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := processCPU()
	for b.Loop() {
		u.clone()
	}
	b.ReportMetric(float64(processCPU()-before)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system time of the whole process: on a
// loaded machine a steadier figure than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FuzzScanReuse: for any unit file and drop-in, a scan that reuses the
// decoding gives what a plain Scan gives, also after the caller changed
// the units of the scan before.
func FuzzScanReuse(f *testing.F) {
	f.Add("[unit]\ndescription = \"%n on %H\"\nwants = \"b.service\"\n[service]\nexec-start = \"true x\"\nenvironment = { A = \"1\" }\n", "[service]\nenvironment = { B = \"2\" }\n")
	f.Add("[service\n", "")
	f.Add("[unit]\nafter = [\"x.target\"]\n[resources]\ncpu-weight = 5\nio-device-weight = { \"/dev/vda\" = \"10M\" }\n", "[unit]\nafter = []\n")
	f.Add("[service]\ntype = \"oneshot\"\nexec-start = [[\"/bin/sh\", \"-c\", \"echo %i\"], \"-/bin/false\"]\nlimits = { nofile = \"1024:4096\" }\n", "[unit]\ncondition = { path-exists = \"!/x\" }\n")
	f.Fuzz(func(t *testing.T, unit, dropIn string) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "a.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.service.d", "10-x.toml"), []byte(dropIn), 0o644); err != nil {
			t.Fatal(err)
		}
		paths, ctx := Paths{dir}, testContext()
		want, wantProblems := Scan(paths, ctx)
		fc := agedCache()
		for round := range 3 {
			got, problems := ScanCached(paths, ctx, fc)
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(problems, wantProblems) {
				t.Fatalf("round %d: the cached scan differs from Scan", round)
			}
			if u := got["a.service"]; u != nil {
				populate(reflect.ValueOf(u).Elem(), 0) // a caller that changes everything
			}
		}
	})
}
