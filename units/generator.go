package units

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Generator writes unit files (and .wants/.requires links) into dir, as
// systemd's generators do, and returns the problems it met, each naming
// its input file and line. It must not fail as a whole for one bad input.
type Generator func(dir string) []error

// generatedDir holds the generators' output: on the unit path after the
// administrator's directories and before the builtin units, so a unit
// file in /etc/vigil/units overrides a generated one of the same name.
func (m *Manager) generatedDir() string { return filepath.Join(m.opts.RuntimeDir, "generated-units") }

// runGenerators runs every generator into a fresh directory and moves what
// changed into generatedDir, so unchanged units keep their files (and are
// not reported as changed on every daemon-reload).
func (m *Manager) runGenerators() []string {
	dir := m.generatedDir()
	if len(m.opts.Generators) == 0 {
		return nil
	}
	var problems []string
	report := func(err error) {
		problems = append(problems, err.Error())
		m.warnf("generator: %v", err)
	}
	fresh := dir + ".new"
	if err := os.RemoveAll(fresh); err != nil {
		report(fmt.Errorf("clear %s: %w", fresh, err))
		return problems
	}
	if err := os.MkdirAll(fresh, 0o755); err != nil {
		report(fmt.Errorf("create %s: %w", fresh, err))
		return problems
	}
	defer os.RemoveAll(fresh)
	for i, g := range m.opts.Generators {
		func() {
			defer func() {
				if r := recover(); r != nil {
					report(fmt.Errorf("generator %d panicked: %v", i+1, r))
				}
			}()
			for _, err := range g(fresh) {
				report(err)
			}
		}()
	}
	if err := syncTree(fresh, dir); err != nil {
		report(fmt.Errorf("install generated units: %w", err))
	}
	return problems
}

// syncTree makes dst hold what src holds, touching only what differs.
func syncTree(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var errs []error
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				errs = append(errs, err)
			}
		case d.Type()&fs.ModeSymlink != 0:
			want, _ := os.Readlink(p)
			if have, err := os.Readlink(target); err == nil && have == want {
				return nil
			}
			os.RemoveAll(target)
			if err := os.Symlink(want, target); err != nil {
				errs = append(errs, err)
			}
		default:
			want, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if have, err := os.ReadFile(target); err == nil && bytes.Equal(have, want) {
				return nil
			}
			// Copied, not moved: the stale walk below compares with src.
			tmp := target + ".vigil-new"
			if err := os.WriteFile(tmp, want, 0o644); err != nil {
				errs = append(errs, err)
				return nil
			}
			os.RemoveAll(target)
			if err := os.Rename(tmp, target); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	// Remove what the generators no longer make, deepest first.
	var stale []string
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dst {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if _, err := os.Lstat(filepath.Join(src, rel)); errors.Is(err, fs.ErrNotExist) {
			stale = append(stale, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
