package kmod

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// moduleEntry is one line of modules.dep.
type moduleEntry struct {
	// Path is relative to the modules directory, as in modules.dep.
	Path string
	// Deps are the paths of every module this one needs, as depmod lists
	// them (the full closure, the deepest dependency last).
	Deps []string
}

// aliasEntry is one "alias PATTERN MODULE" line.
type aliasEntry struct {
	Pattern string
	Module  string
}

// softdepEntry holds the "pre:" and "post:" modules of a softdep line.
type softdepEntry struct {
	Pre, Post []string
}

// depIndex is what depmod wrote for one kernel release.
type depIndex struct {
	byName  map[string]moduleEntry
	builtin map[string]bool
	aliases []aliasEntry
	softdep map[string]softdepEntry
}

// ModuleName turns a module file path or a name as users spell it into
// the kernel's module name: base name without ".ko" and compression
// suffix, '-' replaced by '_'.
func ModuleName(pathOrName string) string {
	base := path.Base(pathOrName)
	for _, suffix := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, suffix)
	}
	base = strings.TrimSuffix(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

// scanLines calls fn for each line of r, with a line size limit large
// enough for any real modules.dep line.
func scanLines(r io.Reader, fn func(line string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// parseModulesDep reads modules.dep: "path: dep dep ...". Lines without a
// colon or with an empty path are skipped.
func parseModulesDep(r io.Reader) (map[string]moduleEntry, error) {
	out := make(map[string]moduleEntry)
	err := scanLines(r, func(line string) {
		modPath, deps, ok := strings.Cut(line, ":")
		modPath = strings.TrimSpace(modPath)
		if !ok || modPath == "" {
			return
		}
		name := ModuleName(modPath)
		if name == "" {
			return
		}
		if _, dup := out[name]; dup {
			// depmod writes the module that wins the search order first.
			return
		}
		out[name] = moduleEntry{Path: modPath, Deps: strings.Fields(deps)}
	})
	return out, err
}

// parseModulesBuiltin reads modules.builtin: one module path per line.
func parseModulesBuiltin(r io.Reader) (map[string]bool, error) {
	out := make(map[string]bool)
	err := scanLines(r, func(line string) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out[ModuleName(line)] = true
		}
	})
	return out, err
}

// parseAliasLines reads "alias PATTERN MODULE" lines (modules.alias and the
// alias lines of modprobe.d share this syntax); other lines are ignored.
func parseAliasLines(r io.Reader) ([]aliasEntry, error) {
	var out []aliasEntry
	err := scanLines(r, func(line string) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "alias" {
			out = append(out, aliasEntry{Pattern: f[1], Module: ModuleName(f[2])})
		}
	})
	return out, err
}

// parseSoftdep parses the words after "softdep MODULE": "pre: a b post: c".
// Words before any "pre:"/"post:" count as pre, as libkmod does.
func parseSoftdep(words []string) softdepEntry {
	var s softdepEntry
	post := false
	for _, w := range words {
		switch w {
		case "pre:":
			post = false
		case "post:":
			post = true
		default:
			if post {
				s.Post = append(s.Post, w)
			} else {
				s.Pre = append(s.Pre, w)
			}
		}
	}
	return s
}

// parseSoftdepLines reads modules.softdep ("softdep MODULE pre: ... post: ...").
func parseSoftdepLines(r io.Reader) (map[string]softdepEntry, error) {
	out := make(map[string]softdepEntry)
	err := scanLines(r, func(line string) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "softdep" {
			name := ModuleName(f[1])
			s := parseSoftdep(f[2:])
			prev := out[name]
			prev.Pre = append(prev.Pre, s.Pre...)
			prev.Post = append(prev.Post, s.Post...)
			out[name] = prev
		}
	})
	return out, err
}

// loadDepIndex reads the depmod files of dir (/lib/modules/RELEASE).
// modules.dep is required; the others are optional.
func loadDepIndex(dir string) (*depIndex, error) {
	idx := &depIndex{}
	open := func(name string, required bool, parse func(io.Reader) error) error {
		f, err := os.Open(path.Join(dir, name))
		if err != nil {
			if !required && os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("open %s: %w", path.Join(dir, name), err)
		}
		defer f.Close()
		if err := parse(f); err != nil {
			return fmt.Errorf("parse %s: %w", path.Join(dir, name), err)
		}
		return nil
	}
	var err error
	if e := open("modules.dep", true, func(r io.Reader) error { idx.byName, err = parseModulesDep(r); return err }); e != nil {
		return nil, e
	}
	if e := open("modules.builtin", false, func(r io.Reader) error { idx.builtin, err = parseModulesBuiltin(r); return err }); e != nil {
		return nil, e
	}
	if e := open("modules.alias", false, func(r io.Reader) error { idx.aliases, err = parseAliasLines(r); return err }); e != nil {
		return nil, e
	}
	if e := open("modules.softdep", false, func(r io.Reader) error { idx.softdep, err = parseSoftdepLines(r); return err }); e != nil {
		return nil, e
	}
	return idx, nil
}
