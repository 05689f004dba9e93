package unitfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Change is one file system change made by Enable or Disable.
type Change struct {
	Kind   string // "symlink" or "unlink"
	Path   string // the link
	Target string // what it points to (for "symlink")
}

func (c Change) String() string {
	if c.Kind == "symlink" {
		return fmt.Sprintf("Created symlink %s → %s.", c.Path, c.Target)
	}
	return fmt.Sprintf("Removed %s.", c.Path)
}

// The enablement states IsEnabled reports, as systemctl is-enabled.
const (
	EnabledStateEnabled  = "enabled"  // linked from a .wants/.requires directory or by an [install] alias
	EnabledStateDisabled = "disabled" // has an [install] section, not enabled
	EnabledStateStatic   = "static"   // no [install] section: only pulled in by others
	EnabledStateIndirect = "indirect" // [install] has only also, or a template without default-instance
	EnabledStateMasked   = "masked"   // linked to /dev/null or empty
	EnabledStateAlias    = "alias"    // the name is a symlink to another unit
	EnabledStateLinked   = "linked"   // the file is a symlink to a file outside the unit directories
)

// Enable creates the links that [install] asks for, in the first
// directory of paths (/etc/vigil/units for the system): NAME in
// TARGET.wants/ for each wanted-by, in TARGET.requires/ for each
// required-by, a link named after each alias, and the same for each unit of
// also. A template is enabled as its default-instance. Links that already
// exist with the right target are left alone; a link in the way with
// another target is an error. A unit without [install] (static) gives no
// changes and no error.
func Enable(paths Paths, name string, ctx Context) ([]Change, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("enable %s: no unit directory", name)
	}
	var changes []Change
	err := enable(paths, name, ctx, map[string]bool{}, &changes)
	return changes, err
}

func enable(paths Paths, name string, ctx Context, visited map[string]bool, changes *[]Change) error {
	if visited[name] {
		return nil
	}
	visited[name] = true
	u, err := Load(paths, name, ctx)
	if err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	if u.LoadState == LoadStateMasked {
		return fmt.Errorf("enable %s: unit is masked", name)
	}
	linkName := u.Name
	if u.ID.IsTemplate {
		if u.Install.DefaultInstance == "" {
			return fmt.Errorf("enable %s: a template without default-instance: enable an instance (%s)", name, u.ID.WithInstance("INSTANCE"))
		}
		linkName = u.ID.WithInstance(u.Install.DefaultInstance)
	}
	dir := paths[0]
	link := func(path string) error {
		if cur, err := os.Readlink(path); err == nil {
			if cur == u.Fragment {
				return nil
			}
			return fmt.Errorf("enable %s: %s exists and points to %s", name, path, cur)
		} else if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("enable %s: %s exists and is not a symlink", name, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("enable %s: %w", name, err)
		}
		if err := os.Symlink(u.Fragment, path); err != nil {
			return fmt.Errorf("enable %s: %w", name, err)
		}
		*changes = append(*changes, Change{Kind: "symlink", Path: path, Target: u.Fragment})
		return nil
	}
	for _, t := range u.Install.WantedBy {
		if err := link(filepath.Join(dir, t+".wants", linkName)); err != nil {
			return err
		}
	}
	for _, t := range u.Install.RequiredBy {
		if err := link(filepath.Join(dir, t+".requires", linkName)); err != nil {
			return err
		}
	}
	for _, a := range u.Install.Alias {
		an, err := ParseName(a)
		if err != nil || an.Type != u.Type {
			return fmt.Errorf("enable %s: alias %q must be a valid name of type %s", name, a, u.Type)
		}
		if err := link(filepath.Join(dir, a)); err != nil {
			return err
		}
	}
	for _, also := range u.Install.Also {
		if err := enable(paths, also, ctx, visited, changes); err != nil {
			return err
		}
	}
	return nil
}

// Disable removes from the first directory of paths every link that
// enables the unit: its name (or, for a template, any instance of it) in
// every .wants/ and .requires/ directory, links to its file named after an
// [install] alias, and does the same for each unit of also. Links in the
// other directories (vendor presets) are left alone.
func Disable(paths Paths, name string, ctx Context) ([]Change, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("disable %s: no unit directory", name)
	}
	var changes []Change
	err := disable(paths, name, ctx, map[string]bool{}, &changes)
	return changes, err
}

func disable(paths Paths, name string, ctx Context, visited map[string]bool, changes *[]Change) error {
	if visited[name] {
		return nil
	}
	visited[name] = true
	n, err := ParseName(name)
	if err != nil {
		return fmt.Errorf("disable: %w", err)
	}
	u, loadErr := Load(paths, name, ctx)
	if loadErr != nil && u == nil {
		return fmt.Errorf("disable %s: %w", name, loadErr)
	}
	matches := func(linkName string) bool {
		if linkName == name {
			return true
		}
		ln, err := ParseName(linkName)
		return err == nil && n.IsTemplate && ln.IsInstance() && ln.Template() == name
	}
	remove := func(p string) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("disable %s: %w", name, err)
		}
		*changes = append(*changes, Change{Kind: "unlink", Path: p})
		return nil
	}
	dir := paths[0]
	top, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disable %s: %w", name, err)
	}
	for _, e := range top {
		sub := filepath.Join(dir, e.Name())
		if e.IsDir() && (strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
			links, err := os.ReadDir(sub)
			if err != nil {
				return fmt.Errorf("disable %s: %w", name, err)
			}
			for _, l := range links {
				if l.Type()&fs.ModeSymlink != 0 && matches(l.Name()) {
					if err := remove(filepath.Join(sub, l.Name())); err != nil {
						return err
					}
				}
			}
		}
	}
	if u != nil && u.Fragment != "" {
		for _, a := range u.Install.Alias {
			p := filepath.Join(dir, a)
			if cur, err := os.Readlink(p); err == nil && cur == u.Fragment {
				if err := remove(p); err != nil {
					return err
				}
			}
		}
		for _, also := range u.Install.Also {
			if err := disable(paths, also, ctx, visited, changes); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsEnabled gives the enablement state of a unit as systemctl is-enabled
// does: enabled, disabled, static, indirect, masked, alias or linked.
func IsEnabled(paths Paths, name string, ctx Context) (string, error) {
	n, err := ParseName(name)
	if err != nil {
		return "", fmt.Errorf("is-enabled: %w", err)
	}
	c := readCatalog(paths, &ctx)
	if e := c.entries[name]; e != nil && e.link != "" {
		if e.masked {
			return EnabledStateMasked, nil
		}
		if filepath.Base(e.link) != name {
			return EnabledStateAlias, nil
		}
	}
	u := c.load(n)
	switch u.LoadState {
	case LoadStateNotFound:
		return "", loadError(u)
	case LoadStateMasked:
		return EnabledStateMasked, nil
	}
	for dirName, refs := range c.depDirs {
		if !strings.HasSuffix(dirName, ".wants") && !strings.HasSuffix(dirName, ".requires") {
			continue
		}
		for _, ref := range refs {
			for _, l := range c.listing(ref.path) {
				ln, err := ParseName(l.Name())
				if err != nil {
					continue
				}
				if l.Name() == name || n.IsTemplate && ln.IsInstance() && ln.Template() == name {
					return EnabledStateEnabled, nil
				}
			}
		}
	}
	for _, a := range u.Install.Alias {
		if e := c.entries[a]; e != nil && e.link == u.Fragment {
			return EnabledStateEnabled, nil
		}
	}
	if e := c.entries[u.Name]; e != nil && e.link != "" && !u.ID.IsInstance() {
		return EnabledStateLinked, nil
	}
	switch {
	case u.Install.Empty():
		return EnabledStateStatic, nil
	case len(u.Install.WantedBy)+len(u.Install.RequiredBy)+len(u.Install.UpheldBy)+len(u.Install.Alias) == 0,
		u.ID.IsTemplate && u.Install.DefaultInstance == "":
		return EnabledStateIndirect, nil
	}
	return EnabledStateDisabled, nil
}
