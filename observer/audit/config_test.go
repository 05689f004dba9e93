package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
)

func testUsers(name string) (uint32, error) {
	switch name {
	case "nobody":
		return 65534, nil
	case "alice":
		return 1000, nil
	}
	return 0, fmt.Errorf("unknown user")
}

func noTrust(glob string) (map[string]trustEntry, error) {
	return nil, fmt.Errorf("no trust lists in this test")
}

func TestAuditParsePolicyFull(t *testing.T) {
	src := `
mode = "permissive"
default = "deny"
decision-timeout = "500ms"
timeout-verdict = "deny"
log = "/var/log/x/audit.log"
log-max-size = "1M"
log-keep = 3

[[rule]]
name = "no-tmp-exec"
access = ["exec"]
path = ["/tmp/**", "/dev/shm/*"]
user = ["nobody", 1000, "42"]
unit = ["foo.service"]
action = "deny"

[[rule]]
access = ["open", "exec"]
executable = ["/usr/bin/python3"]
cgroup = ["/system.slice/*"]
sha256 = ["ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"]
action = "log"
`
	p, err := parsePolicy("audit.toml", []byte(src), testUsers, noTrust)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Permissive || p.Default != observer.Deny || p.DecisionTimeout != 500*time.Millisecond ||
		p.TimeoutVerdict != observer.Deny || p.Log != "/var/log/x/audit.log" || p.LogMaxSize != 1<<20 || p.LogKeep != 3 {
		t.Fatalf("policy settings: %+v", p)
	}
	if len(p.Rules) != 2 {
		t.Fatalf("rules: %d", len(p.Rules))
	}
	r := p.Rules[0]
	if r.Name != "no-tmp-exec" || r.Access != AccessExec || r.Action != ActionDeny || r.Line != 10 || len(r.Path) != 2 {
		t.Fatalf("rule 0: %+v", r)
	}
	if fmt.Sprint(r.UID) != "[65534 1000 42]" {
		t.Fatalf("uids: %v", r.UID)
	}
	r = p.Rules[1]
	if r.Name != "rule-2" || r.Access != AccessOpen|AccessExec || !r.SHA256["abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"] {
		t.Fatalf("rule 1: %+v", r)
	}
}

func TestAuditParsePolicyDefaults(t *testing.T) {
	p, err := parsePolicy("audit.toml", []byte("# nothing\n"), testUsers, noTrust)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Enforce || p.Default != observer.Allow || p.DecisionTimeout != 2*time.Second || p.Log != DefaultLogPath || p.LogKeep != 5 || p.LogMaxSize != 10<<20 {
		t.Fatalf("defaults: %+v", p)
	}
}

func TestAuditParsePolicyErrors(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"syntax", "mode = \n", []string{"audit.toml:1:"}},
		{"mode", "\n\nmode = \"lenient\"\n", []string{"audit.toml:3: mode:", "enforce or permissive"}},
		{"timeout", "decision-timeout = \"soon\"\n", []string{"audit.toml:1: decision-timeout:"}},
		{"size", "log-max-size = \"ten\"\n", []string{"audit.toml:1: log-max-size:"}},
		{"relative log", "log = \"audit.log\"\n", []string{"audit.toml:1: log:"}},
		{"unknown top", "\nmood = \"x\"\n", []string{"audit.toml:2: unknown key \"mood\""}},
		{"unknown rule key", "[[rule]]\naccess=[\"exec\"]\nactoin = \"deny\"\naction=\"deny\"\n", []string{"audit.toml:3: unknown rule key \"actoin\""}},
		{"bad access", "[[rule]]\nname = \"r\"\naccess = [\"write\"]\naction = \"deny\"\n", []string{"audit.toml:3: rule \"r\": access:", "exec or open"}},
		{"no action", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\n", []string{"audit.toml:1: rule \"r\": action: missing"}},
		{"relative path", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\npath = [\"tmp/*\"]\naction = \"deny\"\n", []string{"audit.toml:4: rule \"r\": path:", "absolute"}},
		{"bad glob", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\npath = [\"/tmp/[\"]\naction = \"deny\"\n", []string{"audit.toml:4: rule \"r\": path:"}},
		{"half globstar", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\npath = [\"/tmp/a**\"]\naction = \"deny\"\n", []string{"audit.toml:4:", "whole path element"}},
		{"user", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\nuser = [\"mallory\"]\naction = \"deny\"\n", []string{"audit.toml:4: rule \"r\": user:", "mallory"}},
		{"sha", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\nsha256 = [\"xyz\"]\naction = \"allow\"\n", []string{"audit.toml:4: rule \"r\": sha256:"}},
		{"trust", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\ntrust = \"/nonexistent/*.list\"\naction = \"allow\"\n", []string{"audit.toml:4: rule \"r\": trust:"}},
		{"dup", "[[rule]]\nname = \"r\"\naccess = [\"exec\"]\naction = \"deny\"\n[[rule]]\nname = \"r\"\naccess = [\"exec\"]\naction = \"deny\"\n", []string{"audit.toml:6: rule \"r\": name: already used by the rule at line 1"}},
		{"name", "[[rule]]\nname = \"a b\"\naccess = [\"exec\"]\naction = \"deny\"\n", []string{"audit.toml:2: rule \"a b\": name:"}},
		{"two errors", "mode = \"x\"\ndefault = \"maybe\"\n", []string{"audit.toml:1: mode:", "audit.toml:2: default:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parsePolicy("audit.toml", []byte(c.src), testUsers, loadTrust)
			if err == nil {
				t.Fatalf("no error for %q", c.src)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestAuditTrustList(t *testing.T) {
	dir := t.TempDir()
	sum := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(dir, "a.list"), []byte("# base\n/usr/bin/true 123 "+sum+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.list"), []byte("/bin/x 1 "+sum+"\n/bin/y notasize "+sum+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadTrust(filepath.Join(dir, "*.list"))
	if err == nil || !strings.Contains(err.Error(), "b.list:2: size") {
		t.Fatalf("want b.list:2 error, got %v", err)
	}
	os.Remove(filepath.Join(dir, "b.list"))
	m, err := loadTrust(filepath.Join(dir, "*.list"))
	if err != nil {
		t.Fatal(err)
	}
	if e := m["/usr/bin/true"]; e.size != 123 || e.sum != sum {
		t.Fatalf("entry: %+v", m)
	}
}

func FuzzAuditParsePolicy(f *testing.F) {
	f.Add([]byte("mode = \"enforce\"\n[[rule]]\nname = \"x\"\naccess = [\"exec\"]\npath = [\"/tmp/**\"]\naction = \"deny\"\n"))
	f.Add([]byte("log-max-size = 4096\nlog-keep = 0\n[[rule]]\naccess=[\"open\"]\nuser=[1]\nunit=[\"a*\"]\naction=\"log\"\n"))
	f.Add([]byte("[[rule]]\n[[rule]]\nname = 3\n"))
	f.Add([]byte("decision-timeout = \"-1s\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := parsePolicy("fuzz.toml", src, testUsers, noTrust)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		// A policy that parsed must be usable.
		req := AccessRequest{Access: AccessExec, Path: "/tmp/x", Exe: "/bin/sh", UID: 1, HasUID: true}
		p.Evaluate(&req, nil)
		p.Marks()
	})
}

func FuzzAuditParseTrustList(f *testing.F) {
	f.Add([]byte("# base\n/usr/bin/true 123 " + strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("/x -1 00\n"))
	f.Add([]byte("relative 1 2 3\n\n\t\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		into := map[string]trustEntry{}
		err := ParseTrustList("t.list", src, into)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "t.list:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for p, e := range into {
			if !strings.HasPrefix(p, "/") || e.size < 0 || !isSHA256(e.sum) {
				t.Fatalf("accepted entry %q %+v", p, e)
			}
		}
	})
}
