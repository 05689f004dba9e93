package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"vigil/observer"
	"vigil/observer/rulelines"
)

// DefaultConfigPath is where the policy lives on a running system.
const DefaultConfigPath = "/etc/vigil/audit.toml"

// DefaultLogPath is the audit log when the policy names none.
const DefaultLogPath = "/var/log/vigil/audit.log"

// maxConfigFile bounds the policy file and each trust list.
const maxConfigFile = 4 << 20

// Mode says whether deny verdicts are carried out.
type Mode string

const (
	// Enforce denies what the rules deny (EPERM to the caller).
	Enforce Mode = "enforce"
	// Permissive logs what would have been denied and allows it.
	Permissive Mode = "permissive"
)

// Action is what a matching rule does.
type Action string

const (
	// ActionLog records the access and goes on to the next rule.
	ActionLog Action = "log"
	// ActionAllow records and allows; no later rule is consulted.
	ActionAllow Action = "allow"
	// ActionDeny records and denies (in enforce mode).
	ActionDeny Action = "deny"
)

// Access is a kind of access a rule applies to, as a bit set.
type Access uint8

const (
	// AccessOpen is fanotify's "open" event (FAN_OPEN_PERM).
	AccessOpen Access = 1 << iota
	// AccessExec is fanotify's "exec" event (FAN_OPEN_EXEC_PERM).
	AccessExec
)

// String gives the event kind names: "open", "exec", "open,exec".
func (a Access) String() string {
	var parts []string
	if a&AccessOpen != 0 {
		parts = append(parts, "open")
	}
	if a&AccessExec != 0 {
		parts = append(parts, "exec")
	}
	return strings.Join(parts, ",")
}

// accessOfKind maps an event kind to its Access, 0 for others.
func accessOfKind(kind string) Access {
	switch kind {
	case "open":
		return AccessOpen
	case "exec":
		return AccessExec
	}
	return 0
}

// Policy is one loaded audit.toml: an immutable snapshot. Only the rule hit
// counters change after loading.
type Policy struct {
	// Source is the file it was read from.
	Source          string
	Mode            Mode
	Default         observer.Verdict
	DecisionTimeout time.Duration
	TimeoutVerdict  observer.Verdict
	Log             string
	LogMaxSize      int64
	LogKeep         int
	Rules           []*Rule
	// markPaths are the paths of Marks() with their accesses, to know an
	// event that came through one of the policy's own marks.
	markPaths map[string]Access
	// Loaded is when the file was read.
	Loaded time.Time
}

// Defaults of a policy file that leaves them out.
const (
	defaultDecisionTimeout = 2 * time.Second
	defaultLogMaxSize      = 10 << 20
	defaultLogKeep         = 5
	maxLogKeep             = 100
)

type policyFile struct {
	Mode            string     `toml:"mode"`
	Default         string     `toml:"default"`
	DecisionTimeout string     `toml:"decision-timeout"`
	TimeoutVerdict  string     `toml:"timeout-verdict"`
	Log             string     `toml:"log"`
	LogMaxSize      any        `toml:"log-max-size"`
	LogKeep         *int64     `toml:"log-keep"`
	Rule            []ruleSpec `toml:"rule"`
}

type ruleSpec struct {
	Name       string   `toml:"name"`
	Access     []string `toml:"access"`
	Path       []string `toml:"path"`
	Executable []string `toml:"executable"`
	User       []any    `toml:"user"`
	Unit       []string `toml:"unit"`
	Cgroup     []string `toml:"cgroup"`
	SHA256     []string `toml:"sha256"`
	Trust      string   `toml:"trust"`
	Action     string   `toml:"action"`
}

// LoadPolicy reads and checks a policy file. Errors name file:line and the
// field; all of a file's errors are reported together.
func LoadPolicy(file string) (*Policy, error) {
	src, err := readBounded(file)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	return ParsePolicy(file, src)
}

func readBounded(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(src) > maxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxConfigFile)
	}
	return src, nil
}

// userLookup resolves a user name to its uid; a variable of ParsePolicy's
// callers so that the fuzz test does not read /etc/passwd for every input.
type userLookup func(name string) (uint32, error)

func systemUser(name string) (uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %s has uid %q", name, u.Uid)
	}
	return uint32(n), nil
}

// ParsePolicy parses a policy; name is used in errors ("audit.toml:3:
// rule "x": path: ..."). User names are resolved and the trust lists that
// rules name are read now, so a running policy never touches those files.
func ParsePolicy(name string, src []byte) (*Policy, error) {
	return parsePolicy(name, src, systemUser, loadTrust)
}

// trustLoader reads the trust lists a glob names.
type trustLoader func(glob string) (map[string]trustEntry, error)

func parsePolicy(name string, src []byte, lookup userLookup, trust trustLoader) (*Policy, error) {
	var file policyFile
	md, err := toml.Decode(string(src), &file)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := rulelines.Scan(string(src))
	var errs []error
	top := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, lines.Top(key), key, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		last := k[len(k)-1]
		if len(k) > 1 && k[0] == "rule" {
			i := lines.RuleWithKey(last)
			errs = append(errs, fmt.Errorf("%s:%d: unknown rule key %q (rules know name, access, path, executable, user, unit, cgroup, sha256, trust, action)", name, lines.Rule(i, last), last))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: unknown key %q (the file knows mode, default, decision-timeout, timeout-verdict, log, log-max-size, log-keep and [[rule]] tables)", name, lines.Top(last), k.String()))
	}
	p := &Policy{Source: name, Mode: Enforce, DecisionTimeout: defaultDecisionTimeout, Log: DefaultLogPath,
		LogMaxSize: defaultLogMaxSize, LogKeep: defaultLogKeep, Loaded: time.Now()}
	switch file.Mode {
	case "", string(Enforce):
	case string(Permissive):
		p.Mode = Permissive
	default:
		top("mode", "%q: expected enforce or permissive", file.Mode)
	}
	if v, err := parseVerdict(file.Default); err != nil {
		top("default", "%v", err)
	} else {
		p.Default = v
	}
	if v, err := parseVerdict(file.TimeoutVerdict); err != nil {
		top("timeout-verdict", "%v", err)
	} else {
		p.TimeoutVerdict = v
	}
	if file.DecisionTimeout != "" {
		d, err := time.ParseDuration(file.DecisionTimeout)
		switch {
		case err != nil:
			top("decision-timeout", "%q is not a duration such as \"2s\" or \"500ms\"", file.DecisionTimeout)
		case d <= 0 || d > time.Hour:
			top("decision-timeout", "%s: must be above 0 and at most 1h", d)
		default:
			p.DecisionTimeout = d
		}
	}
	if file.Log != "" {
		if !filepath.IsAbs(file.Log) || strings.HasSuffix(file.Log, "/") {
			top("log", "%q: must be an absolute file path", file.Log)
		} else {
			p.Log = filepath.Clean(file.Log)
		}
	}
	if file.LogMaxSize != nil {
		n, err := parseSize(file.LogMaxSize)
		if err != nil {
			top("log-max-size", "%v", err)
		} else {
			p.LogMaxSize = n
		}
	}
	if file.LogKeep != nil {
		if *file.LogKeep < 0 || *file.LogKeep > maxLogKeep {
			top("log-keep", "%d: must be 0 to %d", *file.LogKeep, maxLogKeep)
		} else {
			p.LogKeep = int(*file.LogKeep)
		}
	}
	names := map[string]int{}
	for i, spec := range file.Rule {
		r, rerrs := parseRule(spec, i, lookup, trust)
		label := r.Name
		for _, e := range rerrs {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: %s: %s", name, lines.Rule(i, e.key), label, e.key, e.msg))
		}
		if first, dup := names[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: name: already used by the rule at line %d", name, lines.Rule(i, "name"), r.Name, first))
		}
		names[r.Name] = lines.Rule(i, "")
		r.Line = lines.Rule(i, "")
		if len(rerrs) == 0 {
			p.Rules = append(p.Rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.markPaths = map[string]Access{}
	for t, acc := range p.Marks() {
		p.markPaths[t.Path] |= acc
	}
	return p, nil
}

func parseVerdict(s string) (observer.Verdict, error) {
	switch s {
	case "", "allow":
		return observer.Allow, nil
	case "deny":
		return observer.Deny, nil
	}
	return observer.Allow, fmt.Errorf("%q: expected allow or deny", s)
}

// parseSize reads 10M, 512K, 1G, or a plain number of bytes.
func parseSize(v any) (int64, error) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case string:
		s := strings.TrimSpace(v)
		mult := int64(1)
		if s != "" {
			switch strings.ToUpper(s[len(s)-1:]) {
			case "K":
				mult = 1 << 10
			case "M":
				mult = 1 << 20
			case "G":
				mult = 1 << 30
			}
			if mult > 1 {
				s = s[:len(s)-1]
			}
		}
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x > (1<<40)/mult {
			return 0, fmt.Errorf("%q: expected a size such as \"10M\", \"512K\" or a number of bytes", v)
		}
		n = x * mult
	default:
		return 0, fmt.Errorf("expected a size such as \"10M\", not %T", v)
	}
	if n < 4096 {
		return 0, fmt.Errorf("%d bytes: must be at least 4096", n)
	}
	return n, nil
}

type ruleError struct{ key, msg string }

func parseRule(spec ruleSpec, index int, lookup userLookup, trust trustLoader) (*Rule, []ruleError) {
	r := &Rule{Name: spec.Name}
	var errs []ruleError
	fail := func(key, format string, args ...any) {
		errs = append(errs, ruleError{key, fmt.Sprintf(format, args...)})
	}
	if r.Name == "" {
		r.Name = fmt.Sprintf("rule-%d", index+1)
	}
	if strings.ContainsAny(r.Name, " \t\n\"=\\") {
		fail("name", "%q: no blanks, quotes, backslashes or '=' (it is written into log lines)", spec.Name)
	}
	if len(spec.Access) == 0 {
		fail("access", "missing: give [\"exec\"], [\"open\"] or both")
	}
	for _, a := range spec.Access {
		acc := accessOfKind(a)
		if acc == 0 {
			fail("access", "%q: expected exec or open", a)
		}
		r.Access |= acc
	}
	switch Action(spec.Action) {
	case ActionLog, ActionAllow, ActionDeny:
		r.Action = Action(spec.Action)
	case "":
		fail("action", "missing: give log, allow or deny")
	default:
		fail("action", "%q: expected log, allow or deny", spec.Action)
	}
	for _, p := range spec.Path {
		m, err := compilePathPattern(p)
		if err != nil {
			fail("path", "%v", err)
			continue
		}
		r.Path = append(r.Path, m)
	}
	for _, p := range spec.Executable {
		m, err := compilePathPattern(p)
		if err != nil {
			fail("executable", "%v", err)
			continue
		}
		r.Executable = append(r.Executable, m)
	}
	for _, p := range spec.Cgroup {
		m, err := compilePathPattern(p)
		if err != nil {
			fail("cgroup", "%v", err)
			continue
		}
		r.Cgroup = append(r.Cgroup, m)
	}
	for _, u := range spec.Unit {
		if u == "" || strings.Contains(u, "/") {
			fail("unit", "%q: expected a unit name or glob such as \"foo.service\"", u)
			continue
		}
		if _, err := path.Match(u, ""); err != nil {
			fail("unit", "%q: %v", u, err)
			continue
		}
		r.Unit = append(r.Unit, u)
	}
	for _, u := range spec.User {
		uid, err := parseUser(u, lookup)
		if err != nil {
			fail("user", "%v", err)
			continue
		}
		r.UID = append(r.UID, uid)
	}
	for _, h := range spec.SHA256 {
		h = strings.ToLower(h)
		if !isSHA256(h) {
			fail("sha256", "%q: expected 64 hexadecimal digits", h)
			continue
		}
		if r.SHA256 == nil {
			r.SHA256 = map[string]bool{}
		}
		r.SHA256[h] = true
	}
	if spec.Trust != "" {
		if !filepath.IsAbs(spec.Trust) {
			fail("trust", "%q: must be an absolute path or glob", spec.Trust)
		} else if entries, err := trust(spec.Trust); err != nil {
			fail("trust", "%v", err)
		} else {
			r.Trust, r.TrustGlob = entries, spec.Trust
		}
	}
	return r, errs
}

func parseUser(v any, lookup userLookup) (uint32, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 || v > 1<<32-2 {
			return 0, fmt.Errorf("uid %d out of range", v)
		}
		return uint32(v), nil
	case string:
		if v == "" {
			return 0, fmt.Errorf("empty user name")
		}
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			return uint32(n), nil
		}
		uid, err := lookup(v)
		if err != nil {
			return 0, fmt.Errorf("%q: %v", v, err)
		}
		return uid, nil
	}
	return 0, fmt.Errorf("want a user name or a number, not %T", v)
}

func isSHA256(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
