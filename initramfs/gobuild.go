package initramfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory at or above dir whose go.mod declares
// module vigil.
func ModuleRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == "vigil" {
					return d, nil
				}
			}
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod of module vigil at or above %s", abs)
		}
	}
}

// BuildGoProgram builds the package pkg (for example "./cmd/vigil") of the
// module at root as a static binary (CGO_ENABLED=0, -trimpath) at out. The
// binary is renamed into place, so concurrent builds of the same output
// never leave a torn file.
func BuildGoProgram(ctx context.Context, root, pkg, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	// A unique name, not one per process: parallel tests build the same
	// output from several goroutines at once.
	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	tmp := f.Name()
	f.Close()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, root, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	return nil
}

// DefaultBinaryCache is where built commands are kept:
// $XDG_CACHE_HOME/vigil-vm (or ~/.cache/vigil-vm, or the temp dir).
func DefaultBinaryCache() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "vigil-vm")
	}
	return filepath.Join(os.TempDir(), "vigil-vm-cache")
}

// BuildCommands builds ./cmd/vigil and ./cmd/initctl of the module at root
// into outDir and returns their paths.
func BuildCommands(ctx context.Context, root, outDir string) (vigil, initctl string, err error) {
	vigil = filepath.Join(outDir, "vigil")
	initctl = filepath.Join(outDir, "initctl")
	if err := BuildGoProgram(ctx, root, "./cmd/vigil", vigil); err != nil {
		return "", "", err
	}
	if err := BuildGoProgram(ctx, root, "./cmd/initctl", initctl); err != nil {
		return "", "", err
	}
	return vigil, initctl, nil
}
