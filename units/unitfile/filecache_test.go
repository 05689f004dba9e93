package unitfile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// cacheTestDir is a unit directory with a unit, a drop-in, an alias, a
// .wants link, a masked unit, an empty file and a file that does not parse.
func cacheTestDir(t *testing.T) (Paths, string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"a.service":                  "[unit]\ndescription = \"A\"\n[service]\nexec-start = \"/bin/true\"\n",
		"a.service.d/10-env.toml":    "[service]\nenvironment = { X = \"1\" }\n",
		"b.target":                   "[unit]\ndescription = \"B\"\n",
		"b.target.wants/a.service":   "",
		"bad.service":                "[service\nexec-start = 1\n",
		"empty.service":              "",
		"t@.service":                 "[service]\nexec-start = \"/bin/echo %i\"\n",
		"b.target.wants/t@x.service": "",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(filepath.Dir(p)) == "b.target.wants" {
			target := filepath.Join(dir, filepath.Base(p))
			if filepath.Base(p) == "t@x.service" {
				target = filepath.Join(dir, "t@.service")
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "masked.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.service"), filepath.Join(dir, "alias-a.service")); err != nil {
		t.Fatal(err)
	}
	return Paths{dir}, dir
}

// agedCache trusts every file at once, as if they were all written long
// before they were read.
func agedCache() *FileCache {
	fc := NewFileCache()
	fc.now = func() time.Time { return time.Now().Add(time.Hour) }
	return fc
}

// TestScanCachedMatchesScan: the units a cached scan gives, from a cold
// cache and from a warm one, equal those of a plain Scan, problems
// included.
func TestScanCachedMatchesScan(t *testing.T) {
	paths, _ := cacheTestDir(t)
	ctx := testContext()
	want, wantProblems := Scan(paths, ctx)
	fc := agedCache()
	for round := range 3 {
		got, problems := ScanCached(paths, ctx, fc)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: units differ from Scan's:\n%#v\nwant\n%#v", round, got, want)
		}
		if !reflect.DeepEqual(problems, wantProblems) {
			t.Fatalf("round %d: problems %v, want %v", round, problems, wantProblems)
		}
	}
	if fc.Len() == 0 {
		t.Fatal("the cache holds no file after three scans")
	}
}

// TestFileCacheSeesEveryChange: a file rewritten with the same size and
// its old modification time (cp -p, tar, a coarse clock), a file replaced
// by rename, a new drop-in and a removed file are all seen by the next
// scan, while untouched files come from the cache.
func TestFileCacheSeesEveryChange(t *testing.T) {
	paths, dir := cacheTestDir(t)
	ctx := testContext()
	fc := agedCache()
	if _, problems := ScanCached(paths, ctx, fc); len(problems) == 0 {
		t.Fatal("bad.service gave no problem")
	}
	a := filepath.Join(dir, "a.service")
	before, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	// Same size, same mtime: only ctime (and the content) differ.
	if err := os.WriteFile(a, []byte("[unit]\ndescription = \"Z\"\n[service]\nexec-start = \"/bin/true\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	units, _ := ScanCached(paths, ctx, fc)
	if got := units["a.service"].Unit.Description; got != "Z" {
		t.Fatalf("description after a same-size rewrite with the old mtime: %q, want Z", got)
	}
	// Replaced by rename (a new inode), as editors and package managers do.
	tmp := filepath.Join(dir, ".b.target.tmp")
	if err := os.WriteFile(tmp, []byte("[unit]\ndescription = \"Q\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "b.target")); err != nil {
		t.Fatal(err)
	}
	// A new drop-in, and a file that goes away.
	if err := os.WriteFile(filepath.Join(dir, "a.service.d", "20-more.toml"), []byte("[unit]\ndescription = \"Y\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "bad.service")); err != nil {
		t.Fatal(err)
	}
	units, problems := ScanCached(paths, ctx, fc)
	if got := units["b.target"].Unit.Description; got != "Q" {
		t.Fatalf("description after a rename over the file: %q, want Q", got)
	}
	if got := units["a.service"].Unit.Description; got != "Y" {
		t.Fatalf("description after a new drop-in: %q, want Y", got)
	}
	if _, ok := units["bad.service"]; ok || len(problems) != 0 {
		t.Fatalf("bad.service removed, yet units has it (%v) or problems remain: %v", ok, problems)
	}
	if _, ok := fc.entries[filepath.Join(dir, "bad.service")]; ok {
		t.Fatal("the cache still holds a removed file")
	}
	want, _ := Scan(paths, ctx)
	if !reflect.DeepEqual(units, want) {
		t.Fatal("cached scan after the changes differs from a plain Scan")
	}
}

// TestFileCacheRacyFilesAreReadAgain: a file whose timestamps were recent
// when it was read is not trusted (another write in the same clock tick
// would leave the stamp equal), so the next scan reads it again; once old
// enough at a reading, it is taken from the cache.
func TestFileCacheRacyFilesAreReadAgain(t *testing.T) {
	paths, dir := cacheTestDir(t)
	ctx := testContext()
	fc := NewFileCache()
	now := time.Now()
	fc.now = func() time.Time { return now }
	ScanCached(paths, ctx, fc)
	a := filepath.Join(dir, "a.service")
	e := fc.entries[a]
	if e.parsed == nil || e.trusted {
		t.Fatalf("a file written just now is trusted: %+v", e)
	}
	if _, _, ok := fc.lookup(a); ok {
		t.Fatal("lookup gave an untrusted file from the cache")
	}
	now = now.Add(racyWindow + time.Second)
	ScanCached(paths, ctx, fc)
	if !fc.entries[a].trusted {
		t.Fatal("a file read well after its last change is not trusted")
	}
	pf, _, ok := fc.lookup(a)
	if !ok || pf != fc.entries[a].parsed {
		t.Fatal("an unchanged, trusted file is not taken from the cache")
	}
	st, ok := fc.Stamp(a)
	fi, err := os.Stat(a)
	if err != nil || !ok || st.Size != fi.Size() || !st.ModTime.Equal(fi.ModTime()) {
		t.Fatalf("Stamp(%s) = %+v, %v; the file has size %d, mtime %v", a, st, ok, fi.Size(), fi.ModTime())
	}
}

// TestFileCacheUnreadable: a drop-in that cannot be read (a directory:
// root reads any mode-000 file) gives what a plain Scan gives, and no
// stamp.
func TestFileCacheUnreadable(t *testing.T) {
	paths, dir := cacheTestDir(t)
	ctx := testContext()
	fc := agedCache()
	drop := filepath.Join(dir, "a.service.d", "30-dir.toml")
	if err := os.Mkdir(drop, 0o755); err != nil {
		t.Fatal(err)
	}
	units, problems := ScanCached(paths, ctx, fc)
	wantUnits, wantProblems := Scan(paths, ctx)
	if !reflect.DeepEqual(units, wantUnits) || !reflect.DeepEqual(problems, wantProblems) {
		t.Fatalf("a directory among the drop-ins: cached scan gives %v, plain Scan %v", problems, wantProblems)
	}
	if _, ok := fc.Stamp(drop); ok {
		t.Fatal("a drop-in that could not be read has a stamp")
	}
}
