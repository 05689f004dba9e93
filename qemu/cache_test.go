package qemu

import (
	"path/filepath"
	"testing"

	"vigil/initramfs"
)

// TestBinaryCachePerModuleRoot: two checkouts get two cache directories
// (neither renames its build over the other's), one checkout always the
// same one (its builds are reused), both inside the shared cache.
func TestBinaryCachePerModuleRoot(t *testing.T) {
	a, b := binaryCacheFor("/work/main"), binaryCacheFor("/tmp/copy/main")
	if a == b {
		t.Errorf("two module roots share the cache directory %s", a)
	}
	if again := binaryCacheFor("/work/main"); again != a {
		t.Errorf("one module root, two cache directories: %s, %s", a, again)
	}
	for _, dir := range []string{a, b} {
		if filepath.Dir(dir) != initramfs.DefaultBinaryCache() {
			t.Errorf("%s is not inside %s", dir, initramfs.DefaultBinaryCache())
		}
	}
}
