package unitfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Paths is a unit search path: directories in priority order, the first
// wins when several hold a file of the same name.
type Paths []string

// DefaultPaths is the system manager's search path.
func DefaultPaths() Paths {
	return Paths{"/etc/vigil/units", "/run/vigil/units", "/usr/lib/vigil/units"}
}

// ErrNotFound is wrapped by Load's error for a unit with no file.
var ErrNotFound = errors.New("unit not found")

// unitEntry is one unit file or symlink found in a unit directory.
type unitEntry struct {
	path   string // dir/name
	dir    string
	link   string // symlink target made absolute; "" for a regular file
	masked bool   // a symlink to /dev/null
}

type dirRef struct {
	prio int // index of the unit directory in Paths
	path string
}

// catalog is one reading of the unit directories: which files, drop-in
// directories and .wants/.requires directories exist. Load and Scan build
// one per call; nothing is kept between calls.
type catalog struct {
	paths      Paths
	schema     *schema
	ctx        *Context
	entries    map[string]*unitEntry
	dropinDirs map[string][]dirRef // "foo.service.d" -> directories
	depDirs    map[string][]dirRef // "foo.target.wants" / ".requires" -> directories
	listings   map[string][]os.DirEntry
	aliases    map[Name][]string      // primary name -> alias names, built on first use
	execCache  map[string]bool        // executable path -> exists and is executable
	parsed     map[string]*parsedFile // files read ahead by Scan
	problems   []Problem
	// cache, when Scan has one, also keeps decoded units (decodecache.go).
	cache *FileCache
}

// file gives path read and parsed, from Scan's read-ahead if it has it.
func (c *catalog) file(path string) *parsedFile {
	if pf, ok := c.parsed[path]; ok {
		return pf
	}
	return parseFile(path)
}

// readAhead reads and parses files on every CPU: reading and parsing are
// most of the cost of a Scan, and files are independent. With a cache,
// files that did not change since the last Scan are taken from it (one
// stat each, on the caller's goroutine: usually no file changed, and
// waking reader threads for stats cost more than the stats) and the
// others are read, parsed and remembered.
func (c *catalog) readAhead(paths []string, cache *FileCache) {
	results := make([]*parsedFile, len(paths))
	type reading struct {
		stamp FileStamp
		fresh bool // read now (not from the cache) and stamped
	}
	readings := make([]reading, len(paths))
	var readAt time.Time
	var todo []int // indexes of the files to read
	if cache != nil {
		readAt = cache.now()
		for i, p := range paths {
			if pf, _, ok := cache.lookup(p); ok {
				results[i] = pf
			} else {
				todo = append(todo, i)
			}
		}
	} else {
		todo = make([]int, len(paths))
		for i := range todo {
			todo[i] = i
		}
	}
	read := func(i int) {
		if cache == nil {
			results[i] = parseFile(paths[i])
			return
		}
		pf, stamp, ok := readStamped(paths[i])
		results[i], readings[i] = pf, reading{stamp, ok}
	}
	if workers := min(runtime.GOMAXPROCS(0), len(todo)); workers <= 1 {
		for _, i := range todo {
			read(i)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for k := int(next.Add(1)) - 1; k < len(todo); k = int(next.Add(1)) - 1 {
					read(todo[k])
				}
			})
		}
		wg.Wait()
	}
	c.parsed = make(map[string]*parsedFile, len(paths))
	for i, p := range paths {
		c.parsed[p] = results[i]
		if readings[i].fresh {
			cache.remember(p, results[i], readings[i].stamp, readAt)
		}
	}
	if cache != nil {
		cache.keepOnly(c.parsed)
	}
}

func readCatalog(paths Paths, ctx *Context) *catalog {
	c := &catalog{
		paths: paths, schema: unitSchema(), ctx: ctx,
		entries:    map[string]*unitEntry{},
		dropinDirs: map[string][]dirRef{},
		depDirs:    map[string][]dirRef{},
		listings:   map[string][]os.DirEntry{},
		execCache:  map[string]bool{},
	}
	for prio, dir := range paths {
		list, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.problems = append(c.problems, Problem{File: dir, Msg: fmt.Sprintf("cannot read unit directory: %v", unwrapPathError(err)), Severity: SeverityError})
			}
			continue
		}
		for _, e := range list {
			name := e.Name()
			full := filepath.Join(dir, name)
			isLink := e.Type()&fs.ModeSymlink != 0
			switch {
			case strings.HasSuffix(name, ".d"), strings.HasSuffix(name, ".wants"), strings.HasSuffix(name, ".requires"):
				if !e.IsDir() && !(isLink && isDir(full)) {
					continue
				}
				if strings.HasSuffix(name, ".d") {
					c.dropinDirs[name] = append(c.dropinDirs[name], dirRef{prio, full})
				} else {
					c.depDirs[name] = append(c.depDirs[name], dirRef{prio, full})
				}
			default:
				if _, err := ParseName(name); err != nil || e.IsDir() {
					continue
				}
				if _, seen := c.entries[name]; seen {
					continue
				}
				ent := &unitEntry{path: full, dir: dir}
				if isLink {
					target, err := os.Readlink(full)
					if err != nil {
						c.problems = append(c.problems, Problem{File: full, Msg: fmt.Sprintf("cannot read symlink: %v", unwrapPathError(err)), Severity: SeverityError})
						continue
					}
					if !filepath.IsAbs(target) {
						target = filepath.Join(dir, target)
					}
					ent.link = filepath.Clean(target)
					ent.masked = ent.link == "/dev/null"
				}
				c.entries[name] = ent
			}
		}
	}
	return c
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func (c *catalog) listing(dir string) []os.DirEntry {
	if l, ok := c.listings[dir]; ok {
		return l
	}
	l, err := os.ReadDir(dir)
	if err != nil {
		c.problems = append(c.problems, Problem{File: dir, Msg: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err)), Severity: SeverityError})
	}
	c.listings[dir] = l
	return l
}

// resolution says where a unit name leads.
type resolution struct {
	primary  Name   // the unit's own name (differs from the asked name for aliases)
	fragment string // file to read
	masked   bool
	maskPath string
	found    bool
}

// resolve follows aliases (symlinks to another unit name) and templates.
func (c *catalog) resolve(n Name, depth int) resolution {
	if depth > 8 {
		return resolution{primary: n}
	}
	name := n.String()
	if e := c.entries[name]; e != nil {
		switch {
		case e.masked:
			return resolution{primary: n, masked: true, maskPath: e.path, found: true}
		case e.link == "":
			return resolution{primary: n, fragment: e.path, found: true}
		}
		targetName := filepath.Base(e.link)
		if targetName == name {
			return resolution{primary: n, fragment: e.link, found: true} // linked from outside
		}
		tn, err := ParseName(targetName)
		if err != nil || tn.Type != n.Type {
			return resolution{primary: n}
		}
		if tn.IsTemplate && n.IsInstance() {
			tn = Name{Prefix: tn.Prefix, Instance: n.Instance, Type: tn.Type}
		}
		if _, inDirs := c.entries[tn.String()]; inDirs || tn.IsInstance() {
			return c.resolve(tn, depth+1)
		}
		return resolution{primary: tn, fragment: e.link, found: fileExists(e.link)}
	}
	if n.IsInstance() {
		tn, _ := ParseName(n.Template())
		r := c.resolve(tn, depth+1)
		if !r.found {
			return resolution{primary: n}
		}
		inst := Name{Prefix: r.primary.Prefix, Instance: n.Instance, Type: n.Type}
		return resolution{primary: inst, fragment: r.fragment, masked: r.masked, maskPath: r.maskPath, found: true}
	}
	return resolution{primary: n}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// aliasesOf lists the names in the unit directories that are symlinks
// leading to primary.
func (c *catalog) aliasesOf(primary Name) []string {
	if c.aliases == nil {
		c.aliases = map[Name][]string{}
		for name, e := range c.entries {
			if e.link == "" || e.masked {
				continue
			}
			n, err := ParseName(name)
			if err != nil {
				continue
			}
			if r := c.resolve(n, 0); r.found && r.primary != n {
				c.aliases[r.primary] = append(c.aliases[r.primary], name)
			}
		}
		for _, list := range c.aliases {
			sort.Strings(list)
		}
	}
	return append([]string(nil), c.aliases[primary]...)
}

// dropIns lists the drop-in files of a unit in the order they apply:
// NAME.d/, the template's NAME@.TYPE.d/ and the type's TYPE.d/ in every
// unit directory; a file name found in several places is taken from the
// first (by directory priority, then in that order), and a drop-in linked to
// /dev/null hides the others of its name. The result is sorted by file name.
func (c *catalog) dropIns(n Name) []string {
	if len(c.dropinDirs) == 0 {
		return nil // no drop-in directory anywhere: the common case
	}
	// Looked up without building a list of the candidates: a reload asks
	// this for every unit, twice, and most units have no drop-in.
	own := c.dropinDirs[n.String()+".d"]
	var tmpl []dirRef
	if t := n.Template(); t != "" && !n.IsTemplate {
		tmpl = c.dropinDirs[t+".d"]
	}
	typ := c.dropinDirs[string(n.Type)+".d"]
	if len(own)+len(tmpl)+len(typ) == 0 {
		return nil
	}
	refs := make([]dirRef, 0, len(own)+len(tmpl)+len(typ))
	refs = append(append(append(refs, own...), tmpl...), typ...)
	slices.SortStableFunc(refs, func(a, b dirRef) int { return a.prio - b.prio })
	seen := map[string]bool{}
	var files []string
	for _, ref := range refs {
		for _, e := range c.listing(ref.path) {
			base := e.Name()
			if !strings.HasSuffix(base, ".toml") || seen[base] {
				continue
			}
			seen[base] = true
			full := filepath.Join(ref.path, base)
			if e.Type()&fs.ModeSymlink != 0 {
				if t, err := os.Readlink(full); err == nil && t == "/dev/null" {
					continue
				}
			} else if e.IsDir() {
				continue
			}
			files = append(files, full)
		}
	}
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i]) < filepath.Base(files[j]) })
	return files
}

// dependencyLinks lists the unit names linked in NAME.wants/ or
// NAME.requires/ (suffix ".wants" or ".requires") in every unit directory,
// and in the template's directory for an instance.
func (c *catalog) dependencyLinks(n Name, suffix string) []string {
	refs := c.depDirs[n.String()+suffix]
	if t := n.Template(); t != "" && !n.IsTemplate {
		refs = append(append([]dirRef(nil), refs...), c.depDirs[t+suffix]...)
	}
	var out []string
	seen := map[string]bool{}
	for _, ref := range refs {
		for _, e := range c.listing(ref.path) {
			name := e.Name()
			dn, err := ParseName(name)
			if err != nil || seen[name] {
				continue
			}
			if dn.IsTemplate {
				c.problems = append(c.problems, Problem{File: filepath.Join(ref.path, name), Severity: SeverityWarning,
					Msg: "a template cannot be a dependency: link an instance (" + dn.WithInstance("INSTANCE") + ")"})
				continue
			}
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// load reads, merges and checks the unit named n.
func (c *catalog) load(n Name) *Unit {
	r := c.resolve(n, 0)
	if !r.found && !(n.Type == TypeSlice && !n.IsTemplate) {
		return &Unit{Name: n.String(), ID: n, Type: n.Type, LoadState: LoadStateNotFound}
	}
	if r.masked {
		return &Unit{Name: r.primary.String(), ID: r.primary, Type: r.primary.Type, LoadState: LoadStateMasked, Fragment: r.maskPath}
	}
	// A slice needs no file, as in systemd: its name says where it sits
	// in the tree, and drop-ins may still give it settings.
	var inputs []*parsedFile
	if r.found {
		frag := c.file(r.fragment)
		if frag.readErr == nil && frag.src == "" {
			// An empty unit file masks the unit, as in systemd.
			return &Unit{Name: r.primary.String(), ID: r.primary, Type: r.primary.Type, LoadState: LoadStateMasked, Fragment: r.fragment}
		}
		inputs = append(inputs, frag)
	}
	dropIns := c.dropIns(r.primary)
	for _, f := range dropIns {
		inputs = append(inputs, c.file(f))
	}
	u := c.cache.reuse(r.primary.String(), r.fragment, dropIns, inputs, c.execCache)
	if u == nil {
		u = c.decode(r, dropIns, inputs)
	}
	// Links and aliases come from the directories, not from the unit's
	// files: they are added to reused decodings too.
	u.Unit.Wants = appendMissing(u.Unit.Wants, c.dependencyLinks(r.primary, ".wants"))
	u.Unit.Requires = appendMissing(u.Unit.Requires, c.dependencyLinks(r.primary, ".requires"))
	u.Aliases = c.aliasesOf(r.primary)
	if n != r.primary && !contains(u.Aliases, n.String()) {
		u.Aliases = append(u.Aliases, n.String())
	}
	return u
}

// decode applies a unit's fragment (inputs[0] if r.found) and drop-ins
// onto the defaults and checks the result.
func (c *catalog) decode(r resolution, dropIns []string, inputs []*parsedFile) *Unit {
	d := newUnitDecoder(c.schema, c.ctx, r.primary)
	d.execCache = c.execCache
	u := d.unit
	u.Fragment = r.fragment
	dropInInputs := inputs
	if r.found {
		frag := inputs[0]
		dropInInputs = inputs[1:]
		if frag.readErr != nil {
			d.problems = append(d.problems, Problem{File: r.fragment, Msg: fmt.Sprintf("cannot read: %v", unwrapPathError(frag.readErr)), Severity: SeverityError})
		} else {
			d.applyParsed(r.fragment, frag)
		}
	}
	for i, f := range dropIns {
		pf := dropInInputs[i]
		if pf.readErr != nil {
			d.problems = append(d.problems, Problem{File: f, Msg: fmt.Sprintf("cannot read drop-in: %v", unwrapPathError(pf.readErr)), Severity: SeverityError})
			continue
		}
		u.DropIns = append(u.DropIns, f)
		d.applyParsed(f, pf)
	}
	u = d.finish()
	c.cache.keepDecoding(r.primary.String(), u, dropIns, inputs, d.execChecks)
	return u
}

// finish runs the final checks and sets the load state.
func (d *unitDecoder) finish() *Unit {
	d.finalize()
	sortProblems(d.problems)
	d.unit.Problems = d.problems
	if HasErrors(d.problems) {
		d.unit.LoadState = LoadStateBadSetting
	}
	return d.unit
}

func appendMissing(list, add []string) []string {
	for _, a := range add {
		if !contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// loadError gives the error Load returns for a unit.
func loadError(u *Unit) error {
	switch u.LoadState {
	case LoadStateNotFound:
		return fmt.Errorf("load %s: %w", u.Name, ErrNotFound)
	case LoadStateBadSetting:
		le := &LoadError{Unit: u.Name}
		for _, p := range u.Problems {
			if p.Severity == SeverityError {
				le.Problems = append(le.Problems, p)
			}
		}
		return le
	}
	return nil
}

// Load finds the unit name in paths and decodes it with its drop-ins.
//
// An instance "foo@bar.service" is read from "foo@bar.service" if it
// exists, else from the template "foo@.service" with %i = "bar". A
// symlink to another unit's file makes name an alias: the unit returned has
// the target's name and lists name in Aliases. A symlink to /dev/null or an
// empty file gives LoadState masked and no error.
//
// The unit is returned even when loading fails: with LoadState not-found
// (and an error wrapping ErrNotFound), or bad-setting (and a *LoadError
// listing every error). Warnings never fail a load; they are in
// Unit.Problems, as are problems with the unit directories themselves.
func Load(paths Paths, name string, ctx Context) (*Unit, error) {
	n, err := ParseName(name)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	c := readCatalog(paths, &ctx)
	u := c.load(n)
	for _, p := range c.problems {
		p.Severity = SeverityWarning
		u.Problems = append(u.Problems, p)
	}
	return u, loadError(u)
}

// Scan loads every unit in paths: each unit file, each instance linked in
// a .wants/ or .requires/ directory, and templates (loaded with an empty
// instance, so their problems are reported; start their instances with
// Load). The map is keyed by primary name; aliases are in Unit.Aliases and
// not keys of their own. A unit that fails to load is in the map with its
// LoadState; problems lists every problem of every unit (Problem values,
// warnings included, see HasErrors) and of the directories. Scan never
// stops early.
func Scan(paths Paths, ctx Context) (map[string]*Unit, []error) {
	return ScanCached(paths, ctx, nil)
}

// ScanCached is Scan that takes unchanged files from cache (see FileCache)
// and leaves in it the files of this scan; a nil cache reads every file.
func ScanCached(paths Paths, ctx Context, cache *FileCache) (map[string]*Unit, []error) {
	c := readCatalog(paths, &ctx)
	c.cache = cache
	cache.beginDecoding(&ctx)
	defer cache.endDecoding()
	names := make([]string, 0, len(c.entries))
	for name := range c.entries {
		names = append(names, name)
	}
	for _, refs := range c.depDirs {
		for _, ref := range refs {
			for _, e := range c.listing(ref.path) {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	var primaries []Name
	var files []string
	queued := map[Name]bool{}
	for _, name := range names {
		n, err := ParseName(name)
		if err != nil || n.IsTemplate && c.entries[name] == nil {
			continue
		}
		r := c.resolve(n, 0)
		if !r.found || queued[r.primary] {
			continue
		}
		queued[r.primary] = true
		primaries = append(primaries, r.primary)
		if !r.masked {
			files = append(files, r.fragment)
			files = append(files, c.dropIns(r.primary)...)
		}
	}
	c.readAhead(files, cache)
	units := make(map[string]*Unit, len(primaries))
	var problems []error
	for _, n := range primaries {
		u := c.load(n)
		units[u.Name] = u
		for _, p := range u.Problems {
			problems = append(problems, p)
		}
	}
	for _, name := range impliedSlices(units) {
		n, _ := ParseName(name)
		units[name] = c.load(n)
	}
	for _, p := range c.problems {
		problems = append(problems, p)
	}
	return units, problems
}

// Check decodes unit files given by path, without a search path, as
// `initctl check` does: every problem of every file, warnings included.
// A file in a directory named NAME.d is checked as a drop-in of NAME
// (without the checks that need the whole unit).
func Check(ctx Context, files ...string) ([]*Unit, []Problem) {
	s := unitSchema()
	var units []*Unit
	var problems []Problem
	for _, file := range files {
		base := filepath.Base(file)
		dropinOf := ""
		if parent := filepath.Base(filepath.Dir(file)); strings.HasSuffix(parent, ".d") && strings.HasSuffix(base, ".toml") {
			dropinOf = strings.TrimSuffix(parent, ".d")
			if UnitType(dropinOf).Valid() {
				dropinOf = "dropin." + dropinOf // a type-level drop-in
			}
			base = dropinOf
		}
		n, err := ParseName(base)
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: err.Error(), Severity: SeverityError})
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: fmt.Sprintf("cannot read: %v", unwrapPathError(err)), Severity: SeverityError})
			continue
		}
		d := newUnitDecoder(s, &ctx, n)
		if len(data) == 0 {
			d.unit.LoadState = LoadStateMasked
			units = append(units, d.unit)
			continue
		}
		if dropinOf == "" {
			d.unit.Fragment = file
		} else {
			d.unit.DropIns = []string{file}
		}
		d.applyFile(file, data)
		var u *Unit
		if dropinOf == "" {
			u = d.finish()
		} else {
			sortProblems(d.problems)
			u = d.unit
			u.Problems = d.problems
			if HasErrors(d.problems) {
				u.LoadState = LoadStateBadSetting
			}
		}
		units = append(units, u)
		problems = append(problems, u.Problems...)
	}
	return units, problems
}

// The slices that always exist: the root of the tree and the default
// slice of system units.
const (
	rootSlice   = "-.slice"
	systemSlice = "system.slice"
)

// impliedSlices lists the slices no file defines but the tree needs, as
// systemd loads them: -.slice, system.slice, every slice a unit names in
// [resources] slice, and the parents of every slice ("a-b.slice" implies
// a.slice).
func impliedSlices(units map[string]*Unit) []string {
	need := map[string]bool{rootSlice: true, systemSlice: true}
	for name, u := range units {
		if u.Type == TypeSlice {
			need[name] = true
		}
		if u.Resources != nil && strings.HasSuffix(u.Resources.Slice, ".slice") {
			need[u.Resources.Slice] = true
		} else if u.Type == TypeService || u.Type == TypeSocket || u.Type == TypeScope {
			need[DefaultSlice(name)] = true
		}
	}
	for name := range need {
		prefix := strings.TrimSuffix(name, ".slice")
		for i := 1; i < len(prefix); i++ {
			if prefix[i] == '-' && prefix[i-1] != '-' {
				need[prefix[:i]+".slice"] = true
			}
		}
	}
	var out []string
	for name := range need {
		if _, loaded := units[name]; loaded {
			continue
		}
		if n, err := ParseName(name); err == nil && n.Type == TypeSlice && !n.IsTemplate {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
