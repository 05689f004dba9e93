package audit

import (
	"fmt"
	"path"
	"strings"
	"sync/atomic"

	"vigil/observer"
)

// Rule is one [[rule]] of the policy. Every condition given must hold; a
// list condition holds when any of its entries does.
type Rule struct {
	Name   string
	Line   int
	Access Access
	Action Action
	// Path matches the accessed file; Executable the program of the process
	// doing the access (for an exec, the image it is leaving); Cgroup its
	// cgroup2 path.
	Path, Executable, Cgroup []pathPattern
	// Unit globs match the unit read off the cgroup path.
	Unit []string
	UID  []uint32
	// SHA256 and Trust match the content of the accessed file: its digest is
	// one of SHA256, or the file is listed in a trust list with the same
	// size and digest.
	SHA256    map[string]bool
	Trust     map[string]trustEntry
	TrustGlob string

	hits atomic.Uint64
}

// needsHash tells whether the rule looks at the accessed file's content.
func (r *Rule) needsHash() bool { return r.SHA256 != nil || r.Trust != nil }

// AccessRequest is one access to judge, read off a fanotify event.
type AccessRequest struct {
	Access Access
	Path   string
	Exe    string
	Cgroup string
	Unit   string
	UID    uint32
	HasUID bool
	PID    int
	// Mark is the path of the fanotify mark that reported the access.
	Mark string
}

// requestOf reads a request off a fanotify event's attributes.
func requestOf(ev *observer.Event) AccessRequest {
	req := AccessRequest{Access: accessOfKind(ev.Kind), Path: ev.Attrs["path"], Exe: ev.Attrs["exe"],
		Cgroup: ev.Attrs["cgroup"], Mark: ev.Attrs["mark"]}
	req.Unit = UnitOfCgroup(req.Cgroup)
	var uid uint64
	if _, err := fmt.Sscan(ev.Attrs["uid"], &uid); err == nil && uid < 1<<32 {
		req.UID, req.HasUID = uint32(uid), true
	}
	fmt.Sscan(ev.Attrs["pid"], &req.PID)
	return req
}

// unitSuffixes are the unit types that own processes; slices only group.
var unitSuffixes = [...]string{".service", ".scope", ".socket", ".mount", ".swap"}

// UnitOfCgroup reads the unit off a cgroup2 path: the innermost element
// named like a unit that runs processes ("/system.slice/foo.service/sub"
// gives foo.service, for delegated sub-groups), else the innermost slice,
// else "".
func UnitOfCgroup(cg string) string {
	elems := strings.Split(strings.Trim(cg, "/"), "/")
	for i := len(elems) - 1; i >= 0; i-- {
		for _, s := range unitSuffixes {
			if strings.HasSuffix(elems[i], s) && len(elems[i]) > len(s) {
				return elems[i]
			}
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		if strings.HasSuffix(elems[i], ".slice") {
			return elems[i]
		}
	}
	return ""
}

// matchesSubject checks every condition that needs no file content.
func (r *Rule) matchesSubject(req *AccessRequest) bool {
	if r.Access&req.Access == 0 {
		return false
	}
	if len(r.Path) > 0 && !anyPattern(r.Path, req.Path) {
		return false
	}
	if len(r.Executable) > 0 && !anyPattern(r.Executable, req.Exe) {
		return false
	}
	if len(r.Cgroup) > 0 && !anyPattern(r.Cgroup, req.Cgroup) {
		return false
	}
	if len(r.Unit) > 0 {
		ok := false
		for _, u := range r.Unit {
			if m, _ := path.Match(u, req.Unit); m && req.Unit != "" {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.UID) > 0 {
		if !req.HasUID {
			return false
		}
		ok := false
		for _, u := range r.UID {
			if u == req.UID {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchesContent checks the content conditions against the file's digest.
func (r *Rule) matchesContent(file string, h *fileHash) bool {
	if h == nil || h.err != nil {
		return false
	}
	if r.SHA256 != nil && !r.SHA256[h.sum] {
		return false
	}
	if r.Trust != nil {
		e, ok := r.Trust[file]
		if !ok || e.size != h.size || e.sum != h.sum {
			return false
		}
	}
	return true
}

func anyPattern(ps []pathPattern, s string) bool {
	if s == "" {
		return false
	}
	for i := range ps {
		if ps[i].match(s) {
			return true
		}
	}
	return false
}

// Decision is what the policy says about one request.
type Decision struct {
	// Rule is the allow or deny rule that decided, nil for the default.
	Rule *Rule
	// Logged are the log rules that matched on the way.
	Logged  []*Rule
	Verdict observer.Verdict
}

// RuleName is the deciding rule's name, or "default".
func (d *Decision) RuleName() string {
	if d.Rule == nil {
		return "default"
	}
	return d.Rule.Name
}

// Recorded tells whether the decision goes to the audit log: a rule said
// something about it, or the default denied it. Accesses that only reach
// an allowing default are not logged (there would be one line per exec of
// the whole machine).
func (d *Decision) Recorded() bool {
	return d.Rule != nil || len(d.Logged) > 0 || d.Verdict == observer.Deny
}

// Evaluate judges a request: the first allow or deny rule that matches
// decides, log rules on the way are noted, and the policy's default
// applies when none decides. A rule on file content needs the file's
// digest: without one (h nil), Evaluate stops there and reports needHash,
// so that the caller hashes off the loop and asks again.
func (p *Policy) Evaluate(req *AccessRequest, h *fileHash) (d Decision, needHash bool) {
	for _, r := range p.Rules {
		if !r.matchesSubject(req) {
			continue
		}
		if r.needsHash() {
			if h == nil {
				return Decision{}, true
			}
			if !r.matchesContent(req.Path, h) {
				continue
			}
		}
		switch r.Action {
		case ActionLog:
			d.Logged = append(d.Logged, r)
			continue
		case ActionAllow:
			d.Rule, d.Verdict = r, observer.Allow
		case ActionDeny:
			d.Rule, d.Verdict = r, observer.Deny
		}
		return d, false
	}
	d.Verdict = p.Default
	return d, false
}

// countHits adds the decision to its rules' counters.
func (d *Decision) countHits() {
	for _, r := range d.Logged {
		r.hits.Add(1)
	}
	if d.Rule != nil {
		d.Rule.hits.Add(1)
	}
}

// Accesses is the union of the accesses the rules name.
func (p *Policy) Accesses() Access {
	var a Access
	for _, r := range p.Rules {
		a |= r.Access
	}
	return a
}

// patternKind is how a path pattern matches.
type patternKind uint8

const (
	patternExact patternKind = iota
	// patternDir ("/tmp/") matches the directory and everything below.
	patternDir
	// patternGlob matches with path.Match: * does not cross '/'.
	patternGlob
	// patternGlobstar has "**" elements, which match any number of them.
	patternGlobstar
)

type pathPattern struct {
	raw  string
	kind patternKind
	// clean is the pattern without a trailing slash; segs its elements.
	clean string
	segs  []string
}

func compilePathPattern(p string) (pathPattern, error) {
	if !strings.HasPrefix(p, "/") {
		return pathPattern{}, fmt.Errorf("%q: must be absolute", p)
	}
	if strings.ContainsRune(p, 0) {
		return pathPattern{}, fmt.Errorf("%q: contains a NUL byte", p)
	}
	pp := pathPattern{raw: p, clean: path.Clean(p)}
	switch {
	case strings.Contains(p, "**"):
		pp.kind = patternGlobstar
		pp.segs = strings.Split(strings.TrimPrefix(pp.clean, "/"), "/")
		for _, s := range pp.segs {
			if s != "**" && strings.Contains(s, "**") {
				return pathPattern{}, fmt.Errorf("%q: ** must be a whole path element (\"/a/**/b\")", p)
			}
			if _, err := path.Match(s, ""); err != nil {
				return pathPattern{}, fmt.Errorf("%q: %v", p, err)
			}
		}
		if strings.HasSuffix(p, "/") {
			pp.segs = append(pp.segs, "**")
		}
	case strings.ContainsAny(p, "*?["):
		pp.kind = patternGlob
		if _, err := path.Match(pp.clean, ""); err != nil {
			return pathPattern{}, fmt.Errorf("%q: %v", p, err)
		}
	case strings.HasSuffix(p, "/"):
		pp.kind = patternDir
	}
	return pp, nil
}

func (pp *pathPattern) match(s string) bool {
	switch pp.kind {
	case patternExact:
		return s == pp.clean
	case patternDir:
		return s == pp.clean || pp.clean == "/" || strings.HasPrefix(s, pp.clean+"/")
	case patternGlob:
		ok, _ := path.Match(pp.clean, s)
		return ok
	}
	if !strings.HasPrefix(s, "/") {
		return false
	}
	return matchSegments(pp.segs, strings.Split(strings.TrimPrefix(s, "/"), "/"))
}

// matchSegments matches path elements against pattern elements where "**"
// stands for any number of elements. It walks a table of reachable states
// (pattern position per path position), so it is O(len(pat)*len(elems))
// however many "**" there are.
func matchSegments(pat, elems []string) bool {
	cur := make([]bool, len(pat)+1)
	next := make([]bool, len(pat)+1)
	cur[0] = true
	closeStars := func(st []bool) {
		for i := 0; i < len(pat); i++ {
			if st[i] && pat[i] == "**" {
				st[i+1] = true
			}
		}
	}
	closeStars(cur)
	for _, e := range elems {
		clear(next)
		for i := 0; i < len(pat); i++ {
			if !cur[i] {
				continue
			}
			if pat[i] == "**" {
				next[i] = true
				continue
			}
			if ok, _ := path.Match(pat[i], e); ok {
				next[i+1] = true
			}
		}
		closeStars(next)
		cur, next = next, cur
	}
	return cur[len(pat)]
}

// markTarget is what fanotify must mark for the pattern to see its
// accesses: a single file, a directory with its entries, or a subtree.
type markTarget struct {
	Path string
	Tree bool
}

func (pp *pathPattern) markTarget() markTarget {
	switch pp.kind {
	case patternExact:
		return markTarget{Path: pp.clean}
	case patternDir:
		return markTarget{Path: pp.clean, Tree: true}
	}
	segs := strings.Split(strings.TrimPrefix(pp.clean, "/"), "/")
	fixed := 0
	for fixed < len(segs) && !strings.ContainsAny(segs[fixed], "*?[") {
		fixed++
	}
	dir := "/" + strings.Join(segs[:fixed], "/")
	// A glob only in the last element ("/dev/shm/*") is seen by a mark of
	// its directory; one deeper needs the subtree.
	if pp.kind == patternGlob && fixed == len(segs)-1 {
		return markTarget{Path: dir}
	}
	return markTarget{Path: dir, Tree: true}
}

// MarkSet is the set of marks a policy needs, with the accesses for each.
type MarkSet map[markTarget]Access

// Marks computes what the policy must mark: each path pattern's target for
// its rule's accesses, and the whole tree from "/" for rules that name no
// path (they judge every access of their kind).
func (p *Policy) Marks() MarkSet {
	ms := MarkSet{}
	for _, r := range p.Rules {
		if len(r.Path) == 0 {
			ms[markTarget{Path: "/", Tree: true}] |= r.Access
			continue
		}
		for i := range r.Path {
			ms[r.Path[i].markTarget()] |= r.Access
		}
	}
	return ms
}
