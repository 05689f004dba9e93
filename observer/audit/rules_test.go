package audit

import (
	"strings"
	"testing"

	"vigil/observer"
)

func TestAuditPathPatterns(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/tmp/evil", "/tmp/evil", true},
		{"/tmp/evil", "/tmp/evil2", false},
		{"/tmp/", "/tmp", true},
		{"/tmp/", "/tmp/a/b/c", true},
		{"/tmp/", "/tmpfoo", false},
		{"/", "/anything/at/all", true},
		{"/dev/shm/*", "/dev/shm/x", true},
		{"/dev/shm/*", "/dev/shm/x/y", false},
		{"/tmp/**", "/tmp/x", true},
		{"/tmp/**", "/tmp/a/b/c", true},
		{"/tmp/**", "/tmp", true},
		{"/tmp/**", "/var/tmp/x", false},
		{"/home/**/bin/*", "/home/a/b/bin/x", true},
		{"/home/**/bin/*", "/home/bin/x", true},
		{"/home/**/bin/*", "/home/a/lib/x", false},
		{"/**/*.so", "/usr/lib/x.so", true},
		{"/**/*.so", "/usr/lib/x.so.1", false},
		{"/a/**/**/b", "/a/b", true},
		{"/a/**/**/b", "/a/x/y/z/b", true},
		{"/usr/bin/py*", "/usr/bin/python3", true},
	}
	for _, c := range cases {
		pp, err := compilePathPattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := pp.match(c.path); got != c.want {
			t.Errorf("%s matches %s: got %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}

func TestAuditMarkTargets(t *testing.T) {
	cases := []struct {
		pattern string
		want    markTarget
	}{
		{"/tmp/evil", markTarget{Path: "/tmp/evil"}},
		{"/tmp/", markTarget{Path: "/tmp", Tree: true}},
		{"/dev/shm/*", markTarget{Path: "/dev/shm"}},
		{"/tmp/**", markTarget{Path: "/tmp", Tree: true}},
		{"/home/*/bin/x", markTarget{Path: "/home", Tree: true}},
		{"/**/*.so", markTarget{Path: "/", Tree: true}},
	}
	for _, c := range cases {
		pp, err := compilePathPattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := pp.markTarget(); got != c.want {
			t.Errorf("%s: mark %+v, want %+v", c.pattern, got, c.want)
		}
	}
	p := mustPolicy(t, `
[[rule]]
name = "a"
access = ["exec"]
path = ["/tmp/**"]
action = "deny"
[[rule]]
name = "b"
access = ["open"]
path = ["/tmp/", "/etc/shadow"]
action = "log"
[[rule]]
name = "c"
access = ["exec"]
user = [0]
action = "log"
`)
	ms := p.Marks()
	want := MarkSet{{Path: "/tmp", Tree: true}: AccessExec | AccessOpen, {Path: "/etc/shadow"}: AccessOpen, {Path: "/", Tree: true}: AccessExec}
	if len(ms) != len(want) {
		t.Fatalf("marks %v, want %v", ms, want)
	}
	for k, v := range want {
		if ms[k] != v {
			t.Errorf("mark %+v: %v, want %v", k, ms[k], v)
		}
	}
}

func mustPolicy(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := parsePolicy("audit.toml", []byte(src), testUsers, loadTrust)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuditUnitOfCgroup(t *testing.T) {
	for cg, want := range map[string]string{
		"/system.slice/foo.service":          "foo.service",
		"/system.slice/foo.service/payload":  "foo.service",
		"/user.slice/user-1000.slice":        "user-1000.slice",
		"/init.scope":                        "init.scope",
		"/":                                  "",
		"":                                   "",
		"/vigil/system.slice/sshd.socket":    "sshd.socket",
		"/system.slice/.service/weird.mount": "weird.mount",
	} {
		if got := UnitOfCgroup(cg); got != want {
			t.Errorf("UnitOfCgroup(%q) = %q, want %q", cg, got, want)
		}
	}
}

func TestAuditEvaluate(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	p := mustPolicy(t, `
default = "allow"
[[rule]]
name = "watch-etc"
access = ["open"]
path = ["/etc/"]
action = "log"
[[rule]]
name = "shadow-only-root"
access = ["open"]
path = ["/etc/shadow"]
user = ["nobody", "alice"]
action = "deny"
[[rule]]
name = "py-in-web"
access = ["exec"]
executable = ["/usr/bin/python3*"]
unit = ["web*.service"]
action = "deny"
[[rule]]
name = "slice"
access = ["exec"]
cgroup = ["/sandbox.slice/**"]
path = ["/usr/bin/*"]
action = "deny"
[[rule]]
name = "known-tmp"
access = ["exec"]
path = ["/tmp/**"]
sha256 = ["`+sum+`"]
action = "allow"
[[rule]]
name = "no-tmp-exec"
access = ["exec"]
path = ["/tmp/**", "/dev/shm/*"]
action = "deny"
`)
	good := &fileHash{sum: sum, size: 10}
	bad := &fileHash{sum: strings.Repeat("11", 32), size: 10}
	cases := []struct {
		name     string
		req      AccessRequest
		hash     *fileHash
		needHash bool
		rule     string
		logged   int
		verdict  observer.Verdict
	}{
		{"etc open logged", AccessRequest{Access: AccessOpen, Path: "/etc/passwd", UID: 1000, HasUID: true}, nil, false, "default", 1, observer.Allow},
		{"shadow by alice", AccessRequest{Access: AccessOpen, Path: "/etc/shadow", UID: 1000, HasUID: true}, nil, false, "shadow-only-root", 1, observer.Deny},
		{"shadow by root", AccessRequest{Access: AccessOpen, Path: "/etc/shadow", UID: 0, HasUID: true}, nil, false, "default", 1, observer.Allow},
		{"shadow without uid", AccessRequest{Access: AccessOpen, Path: "/etc/shadow"}, nil, false, "default", 1, observer.Allow},
		{"python in web", AccessRequest{Access: AccessExec, Path: "/bin/ls", Exe: "/usr/bin/python3.11", Unit: "web1.service"}, nil, false, "py-in-web", 0, observer.Deny},
		{"python elsewhere", AccessRequest{Access: AccessExec, Path: "/bin/ls", Exe: "/usr/bin/python3.11", Unit: "db.service"}, nil, false, "default", 0, observer.Allow},
		{"sandbox", AccessRequest{Access: AccessExec, Path: "/usr/bin/id", Cgroup: "/sandbox.slice/a/b"}, nil, false, "slice", 0, observer.Deny},
		{"tmp needs hash", AccessRequest{Access: AccessExec, Path: "/tmp/evil"}, nil, true, "", 0, observer.Allow},
		{"tmp known", AccessRequest{Access: AccessExec, Path: "/tmp/evil"}, good, false, "known-tmp", 0, observer.Allow},
		{"tmp unknown", AccessRequest{Access: AccessExec, Path: "/tmp/evil"}, bad, false, "no-tmp-exec", 0, observer.Deny},
		{"shm", AccessRequest{Access: AccessExec, Path: "/dev/shm/x"}, nil, false, "no-tmp-exec", 0, observer.Deny},
		{"open in tmp is not exec", AccessRequest{Access: AccessOpen, Path: "/tmp/evil"}, nil, false, "default", 0, observer.Allow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			d, need := p.Evaluate(&req, c.hash)
			if need != c.needHash {
				t.Fatalf("needHash %v, want %v", need, c.needHash)
			}
			if need {
				return
			}
			if d.RuleName() != c.rule || len(d.Logged) != c.logged || d.Verdict != c.verdict {
				t.Fatalf("decision rule=%s logged=%d verdict=%s, want %s %d %s", d.RuleName(), len(d.Logged), d.Verdict, c.rule, c.logged, c.verdict)
			}
		})
	}
	deny := mustPolicy(t, "default = \"deny\"\n[[rule]]\naccess=[\"exec\"]\npath=[\"/usr/bin/*\"]\naction=\"allow\"\n")
	d, _ := deny.Evaluate(&AccessRequest{Access: AccessExec, Path: "/opt/x"}, nil)
	if d.Verdict != observer.Deny || !d.Recorded() {
		t.Fatalf("default deny: %+v", d)
	}
}

func BenchmarkAuditEvaluate(b *testing.B) {
	p := mustPolicy(b, `
[[rule]]
name = "watch-etc"
access = ["open"]
path = ["/etc/"]
action = "log"
[[rule]]
name = "py"
access = ["exec"]
executable = ["/usr/bin/python3*"]
unit = ["web*.service"]
action = "deny"
[[rule]]
name = "no-tmp-exec"
access = ["exec"]
path = ["/tmp/**", "/dev/shm/*"]
action = "deny"
`)
	req := AccessRequest{Access: AccessExec, Path: "/usr/lib/x/y/z/bin", Exe: "/bin/sh", Unit: "a.service"}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(&req, nil)
	}
}

func TestAuditRelevantOnlyThroughOwnMarksOrRules(t *testing.T) {
	p := mustPolicy(t, "default = \"deny\"\n[[rule]]\nname = \"bin\"\naccess = [\"exec\"]\npath = [\"/usr/bin/*\"]\naction = \"allow\"\n")
	for _, c := range []struct {
		req  AccessRequest
		want bool
	}{
		// Through the policy's own mark of /usr/bin: the default applies.
		{AccessRequest{Access: AccessExec, Path: "/usr/bin/x", Mark: "/usr/bin"}, true},
		{AccessRequest{Access: AccessExec, Path: "/usr/bin/sub/x", Mark: "/usr/bin"}, true},
		// A path unit's mark: not the auditor's business.
		{AccessRequest{Access: AccessOpen, Path: "/run/held/data", Mark: "/run/held/data"}, false},
		{AccessRequest{Access: AccessOpen, Path: "/usr/bin/x", Mark: "/usr/bin"}, false},
		// Named by a rule, whoever marked it.
		{AccessRequest{Access: AccessExec, Path: "/usr/bin/x", Mark: "/usr"}, true},
	} {
		if got := relevant(p, &c.req); got != c.want {
			t.Errorf("relevant(%+v) = %v, want %v", c.req, got, c.want)
		}
	}
}
