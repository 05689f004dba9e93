package pid1

import (
	"strings"
	"testing"

	"vigil/initramfs"
)

// auditGuestPolicy denies exec of anything directly in /tmp except
// /tmp/good. "/tmp/*" is seen through a mark of the /tmp directory, not
// of the whole root file system.
const auditGuestPolicy = `mode = "enforce"
decision-timeout = "5s"
[[rule]]
name = "good-is-fine"
access = ["exec"]
path = ["/tmp/good"]
action = "allow"
[[rule]]
name = "no-tmp-exec"
access = ["exec"]
path = ["/tmp/*"]
action = "deny"
`

const auditGuestScript = `
mkdir -p /tmp
printf '#!/bin/sh\necho evil-ran\n' > /tmp/evil
printf '#!/bin/sh\necho good-ran\n' > /tmp/good
chmod 755 /tmp/evil /tmp/good
try() { out=$("$@" 2>&1) && rc=0 || rc=$?; echo "$1: rc=$rc [$out]"; }

echo "== enforce"
try /tmp/evil
try /tmp/good
try /bin/true
initctl audit --verdict deny -n 5
initctl audit status | grep -E '^(  Mode|Enforcing)'

echo "== permissive, by editing the file"
sed 's/"enforce"/"permissive"/' /etc/vigil/audit.toml > /etc/vigil/audit.toml.new
mv /etc/vigil/audit.toml.new /etc/vigil/audit.toml
# A deadline for the inotify reload, not a speed: 600 rounds of an initctl.
for i in $(seq 1 600); do initctl audit status | grep -q 'Mode: permissive' && break; sleep 0.1; done
initctl audit status | grep -E '^  Mode'
try /tmp/evil
initctl audit -n 1 -o json

echo "== enforce again, by initctl audit reload"
sed 's/"permissive"/"enforce"/' /etc/vigil/audit.toml > /tmp/audit.toml && cat /tmp/audit.toml > /etc/vigil/audit.toml
initctl audit reload | grep -E '^  Mode'
try /tmp/evil

echo "== broken"
printf '[[rule]]\nname = "broken"\naccess = ["exec"]\naction = "forbid"\n' >> /etc/vigil/audit.toml
try initctl audit reload
try /tmp/evil
echo "pid1=$(cat /proc/1/comm)"
`

// TestAuditInGuest is issue 7's "Must show" for the auditing guest: a deny
// rule makes exec of /tmp/evil fail with EPERM and leaves an audit record
// while allowed programs run; permissive mode logs without denying;
// editing audit.toml (watched with inotify) and `initctl audit reload`
// take effect without restarting anything; a broken file keeps the rules
// in force and says where it broke.
func TestAuditInGuest(t *testing.T) {
	res := mustBootGuest(t, guestRun{
		files:  []initramfs.File{{Path: "/etc/vigil/audit.toml", Data: []byte(auditGuestPolicy), Mode: 0o644}},
		script: auditGuestScript,
	})
	out := strings.Join(res.ScriptOutput, "\n")
	if res.ExitStatus != 0 {
		t.Fatalf("script failed (%d):\n%s", res.ExitStatus, out)
	}
	section := func(name string) string {
		_, rest, ok := strings.Cut(out, "== "+name+"\n")
		if !ok {
			t.Fatalf("no section %q in:\n%s", name, out)
		}
		if i := strings.Index(rest, "\n== "); i >= 0 {
			rest = rest[:i]
		}
		return rest
	}
	enforce := section("enforce")
	for _, want := range []string{
		"/tmp/evil: rc=126", "not permitted",
		"/tmp/good: rc=0 [good-ran]", "/bin/true: rc=0",
		"deny  exec /tmp/evil", "rule=no-tmp-exec",
		"Mode: enforce", "Enforcing: true",
	} {
		if !strings.Contains(enforce, want) {
			t.Errorf("enforce: output lacks %q:\n%s", want, enforce)
		}
	}
	if strings.Contains(enforce, "evil-ran") {
		t.Errorf("enforce: /tmp/evil ran:\n%s", enforce)
	}
	permissive := section("permissive, by editing the file")
	for _, want := range []string{"Mode: permissive", "/tmp/evil: rc=0 [evil-ran]", `"verdict":"deny"`, `"mode":"permissive"`, `"path":"/tmp/evil"`} {
		if !strings.Contains(permissive, want) {
			t.Errorf("permissive: output lacks %q:\n%s", want, permissive)
		}
	}
	again := section("enforce again, by initctl audit reload")
	if !strings.Contains(again, "Mode: enforce") || !strings.Contains(again, "/tmp/evil: rc=126") {
		t.Errorf("reload to enforce:\n%s", again)
	}
	broken := section("broken")
	for _, want := range []string{"initctl: rc=1", "audit.toml:", `rule "broken": action`, "/tmp/evil: rc=126", "pid1=init"} {
		if !strings.Contains(broken, want) {
			t.Errorf("broken policy: output lacks %q:\n%s", want, broken)
		}
	}
}
