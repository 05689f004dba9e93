package pid1

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// elfInterpreter tells a static program from a dynamic one: /bin/sh is
// dynamic on Debian, busybox-static's busybox and a CGO_ENABLED=0 Go
// build are not.
func TestELFInterpreter(t *testing.T) {
	interp, err := elfInterpreter("/bin/sh")
	if err != nil || !strings.Contains(interp, "ld-linux") {
		t.Errorf("/bin/sh: interpreter %q, %v", interp, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "static")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if interp, err := elfInterpreter(bin); err != nil || interp != "" {
		t.Errorf("static Go program: interpreter %q, %v", interp, err)
	}
	if _, err := elfInterpreter(src); err == nil {
		t.Errorf("a Go source file read as ELF")
	}
}
