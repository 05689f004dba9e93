package devnode

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"vigil/observer/rulelines"
	"vigil/observer/uevent"
)

// DefaultRulesPath is where the rules live on a running system.
const DefaultRulesPath = "/etc/vigil/devices.toml"

// maxRulesFile bounds the rules file; it is a handful of lines.
const maxRulesFile = 1 << 20

// Rules give device nodes their owner, group and mode, as udev's OWNER=,
// GROUP= and MODE= assignments do. The file is a list of rules:
//
//	[[rule]]
//	subsystem = "block"      # globs, as in path.Match; all given must match
//	devname = "vd*"          # the name under /dev ("input/event*")
//	devtype = "disk"
//	group = "disk"           # a name or a number
//	owner = "root"
//	mode = "0660"            # octal, as a string
//
// Every rule that matches a device applies, in file order, and a later
// rule's owner, group or mode overrides an earlier one's (udev's order of
// assignment). Names of users and groups are resolved when the file is
// loaded.
type Rules struct {
	rules []rule
}

type rule struct {
	line                        int
	subsystem, devname, devtype string
	uid, gid                    int // -1: not set
	mode                        fs.FileMode
	hasMode                     bool
}

type ruleSpec struct {
	Subsystem string `toml:"subsystem"`
	DevName   string `toml:"devname"`
	DevType   string `toml:"devtype"`
	Owner     any    `toml:"owner"`
	Group     any    `toml:"group"`
	Mode      any    `toml:"mode"`
}

type rulesFile struct {
	Rule []ruleSpec `toml:"rule"`
}

// LoadRules reads a rules file. Errors name the file and line. A missing
// file is an error wrapping fs.ErrNotExist (no rules then: callers may
// treat it as empty).
func LoadRules(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("device rules: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("device rules %s: %w", path, err)
	}
	if len(src) > maxRulesFile {
		return nil, fmt.Errorf("device rules %s: larger than %d bytes", path, maxRulesFile)
	}
	return ParseRules(path, src)
}

// ParseRules parses the rules in src; name is used in errors
// ("devices.toml:3: ...").
func ParseRules(name string, src []byte) (*Rules, error) {
	var file rulesFile
	md, err := toml.Decode(string(src), &file)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := rulelines.Scan(string(src))
	at := func(i int, key string) string {
		return fmt.Sprintf("%s:%d", name, lines.Rule(i, key))
	}
	var errs []error
	for _, k := range md.Undecoded() {
		idx := -1
		if len(k) > 1 && k[0] == "rule" {
			idx = lines.RuleWithKey(k[len(k)-1])
		}
		errs = append(errs, fmt.Errorf("%s: unknown key %q (rules know subsystem, devname, devtype, owner, group, mode)", at(idx, k[len(k)-1]), k.String()))
	}
	if len(md.Keys()) > 0 && !md.IsDefined("rule") {
		errs = append(errs, fmt.Errorf("%s: no [[rule]] tables", name))
	}
	rs := &Rules{}
	for i, spec := range file.Rule {
		r := rule{line: lines.Rule(i, ""), subsystem: spec.Subsystem, devname: spec.DevName, devtype: spec.DevType, uid: -1, gid: -1}
		ok := true
		fail := func(key, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", at(i, key), fmt.Sprintf(format, args...)))
			ok = false
		}
		if r.subsystem == "" && r.devname == "" && r.devtype == "" {
			fail("", "rule matches nothing: give subsystem, devname or devtype")
		}
		for _, g := range [...]struct{ key, pattern string }{{"subsystem", r.subsystem}, {"devname", r.devname}, {"devtype", r.devtype}} {
			if _, err := path.Match(g.pattern, ""); err != nil {
				fail(g.key, "%s %q: %v", g.key, g.pattern, err)
			}
		}
		if spec.Owner == nil && spec.Group == nil && spec.Mode == nil {
			fail("", "rule sets nothing: give owner, group or mode")
		}
		if spec.Owner != nil {
			uid, err := lookupID(spec.Owner, func(n string) (string, error) {
				u, err := user.Lookup(n)
				if err != nil {
					return "", err
				}
				return u.Uid, nil
			})
			if err != nil {
				fail("owner", "owner: %v", err)
			}
			r.uid = uid
		}
		if spec.Group != nil {
			gid, err := lookupID(spec.Group, func(n string) (string, error) {
				g, err := user.LookupGroup(n)
				if err != nil {
					return "", err
				}
				return g.Gid, nil
			})
			if err != nil {
				fail("group", "group: %v", err)
			}
			r.gid = gid
		}
		if spec.Mode != nil {
			s, isString := spec.Mode.(string)
			m, err := strconv.ParseUint(s, 8, 32)
			switch {
			case !isString:
				fail("mode", "mode must be an octal string such as \"0660\", not %T", spec.Mode)
			case err != nil || m > 0o7777:
				fail("mode", "mode %q is not an octal mode up to 07777", s)
			default:
				r.mode, r.hasMode = unixMode(uint32(m)), true
			}
		}
		if ok {
			rs.rules = append(rs.rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// unixMode turns octal permission bits (with setuid, setgid, sticky) into
// an fs.FileMode, whose bits for those differ from the kernel's.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// lookupID takes a number (TOML integer or numeric string) or a name.
func lookupID(v any, byName func(string) (string, error)) (int, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 || v > 1<<31-1 {
			return -1, fmt.Errorf("id %d out of range", v)
		}
		return int(v), nil
	case string:
		if v == "" {
			return -1, fmt.Errorf("empty name")
		}
		if n, err := strconv.ParseUint(v, 10, 31); err == nil {
			return int(n), nil
		}
		s, err := byName(v)
		if err != nil {
			return -1, err
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1, fmt.Errorf("%s has id %q", v, s)
		}
		return n, nil
	}
	return -1, fmt.Errorf("want a name or a number, not %T", v)
}

// Len is the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

func (r *rule) matches(ev *uevent.Uevent) bool {
	name := strings.TrimPrefix(ev.DevName, "/dev/")
	for _, c := range [...]struct{ pattern, value string }{{r.subsystem, ev.Subsystem}, {r.devname, name}, {r.devtype, ev.DevType}} {
		if c.pattern == "" {
			continue
		}
		if ok, _ := path.Match(c.pattern, c.value); !ok {
			return false
		}
	}
	return true
}

// Apply sets the owner, group and mode of the event's device node under
// root, for "add" and "change" events of devices with a node. Nothing
// matching means nothing to do. The node must not be a symlink (it is
// never followed).
func (rs *Rules) Apply(ev *uevent.Uevent, root string) error {
	if rs == nil || ev.DevName == "" || ev.Action != "add" && ev.Action != "change" {
		return nil
	}
	uid, gid := -1, -1
	var mode fs.FileMode
	var hasMode, matched bool
	for i := range rs.rules {
		r := &rs.rules[i]
		if !r.matches(ev) {
			continue
		}
		matched = true
		if r.uid >= 0 {
			uid = r.uid
		}
		if r.gid >= 0 {
			gid = r.gid
		}
		if r.hasMode {
			mode, hasMode = r.mode, true
		}
	}
	if !matched {
		return nil
	}
	node := filepath.Join(root, ev.DevNode())
	fi, err := os.Lstat(node)
	if err != nil {
		return fmt.Errorf("device rules for %s: %w", ev.DevNode(), err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("device rules for %s: is a symlink", ev.DevNode())
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(node, uid, gid); err != nil {
			return fmt.Errorf("device rules for %s: %w", ev.DevNode(), err)
		}
	}
	if hasMode {
		if err := os.Chmod(node, mode); err != nil {
			return fmt.Errorf("device rules for %s: %w", ev.DevNode(), err)
		}
	}
	return nil
}
