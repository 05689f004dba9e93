package initramfs

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Parallel boot tests build the same binary from several goroutines of
// one process: each build must land whole, and none may fail.
func TestBuildGoProgramConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bin", "initctl")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = BuildGoProgram(context.Background(), root, "./cmd/initctl", out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the built program is not a whole ELF file: %v", err)
	}
	f.Close()
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}
