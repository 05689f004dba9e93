package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FindKernel returns the newest bootDir/vmlinuz-* by version order.
func FindKernel(bootDir string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	if len(matches) == 0 {
		return "", fmt.Errorf("no kernel: %s/vmlinuz-* not found (install linux-image-amd64, or pass --kernel)", bootDir)
	}
	newest := matches[0]
	for _, m := range matches[1:] {
		if compareVersions(KernelRelease(m), KernelRelease(newest)) > 0 {
			newest = m
		}
	}
	return newest, nil
}

// KernelRelease is the release in a kernel file name:
// /boot/vmlinuz-6.1.0-56-amd64 -> 6.1.0-56-amd64.
func KernelRelease(kernel string) string {
	return strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
}

// ModulesDir returns /lib/modules/<release> for a kernel file and checks
// that it holds a modules.dep.
func ModulesDir(kernel string) (string, error) {
	dir := filepath.Join("/lib/modules", KernelRelease(kernel))
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		return "", fmt.Errorf("kernel %s has no modules: %w (install its linux-image package, or use a kernel named vmlinuz-<release> with /lib/modules/<release>)", kernel, err)
	}
	return dir, nil
}

// compareVersions orders release strings the way people read them: runs of
// digits compare as numbers ("6.1.0-56" after "6.1.0-9").
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if isDigit(da[0]) && isDigit(db[0]) {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(na) != len(nb) {
				return sign(len(na) - len(nb))
			}
			if na != nb {
				return strings.Compare(na, nb)
			}
		} else if da != db {
			return strings.Compare(da, db)
		}
		a, b = ra, rb
	}
	return sign(len(a) - len(b))
}

func splitRun(s string) (run, rest string) {
	i := 1
	for i < len(s) && isDigit(s[i]) == isDigit(s[0]) {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
