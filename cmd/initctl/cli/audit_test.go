package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/audit"
	"vigil/observer/control"
)

// TestAuditCommands runs `initctl audit` end to end against a real
// auditor (without fanotify: it shows its policy and log, and reloads)
// behind a real control socket.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "audit.toml")
	logPath := filepath.Join(dir, "audit.log")
	policy := "mode = \"permissive\"\nlog = \"" + logPath + "\"\n[[rule]]\nname = \"no-tmp-exec\"\naccess = [\"exec\"]\npath = [\"/tmp/**\"]\naction = \"deny\"\n"
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := []audit.Record{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), PID: 10, Exe: "/bin/sh", UID: "0", Unit: "web.service", Path: "/tmp/evil", Access: "exec", Rule: "no-tmp-exec", Verdict: "deny", Mode: "permissive", Via: "loop"},
		{Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), PID: 11, UID: "1000", Unit: "db.service", Path: "/tmp/ok", Access: "exec", Rule: "x", Verdict: "allow", Mode: "enforce"},
	}
	var buf bytes.Buffer
	for _, r := range lines {
		buf.WriteString(audit.FormatRecord(r) + "\n")
	}
	if err := os.WriteFile(logPath, buf.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	loop := observer.New(observer.Options{Logf: t.Logf})
	a, err := audit.New(audit.Options{Loop: loop, ConfigPath: cfg, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(nil, "not in this test"); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "control.sock")
	srv, err := control.Listen(loop, socket, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); loop.Run(ctx) }()
	t.Cleanup(func() { srv.Close(); cancel(); <-ran; a.Stop() })
	cli := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"initctl", "--socket", socket}, args...), &out, &errb)
		return out.String(), errb.String(), code
	}

	out, _, code := cli("audit", "--verdict", "deny")
	if code != 0 || !strings.Contains(out, "deny  exec /tmp/evil pid=10 uid=0 exe=/bin/sh unit=web.service rule=no-tmp-exec (permissive)") || strings.Contains(out, "/tmp/ok") {
		t.Fatalf("audit --verdict deny: %d\n%s", code, out)
	}
	out, _, _ = cli("audit", "--unit", "db", "-o", "json")
	if !strings.Contains(out, `"path":"/tmp/ok"`) || strings.Contains(out, "/tmp/evil") {
		t.Fatalf("audit --unit db -o json:\n%s", out)
	}
	out, _, code = cli("audit", "status")
	mustContain(t, "audit status", out, "Mode: permissive", "Enforcing: no (fanotify unavailable: not in this test)", "no-tmp-exec", "exec")
	if code != 0 {
		t.Fatalf("status exit %d", code)
	}
	if err := os.WriteFile(cfg, []byte(policy+"bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := cli("audit", "reload")
	if code == 0 || !strings.Contains(errOut, cfg+":") || !strings.Contains(errOut, `:8: unknown rule key "bogus"`) {
		t.Fatalf("broken reload: %d %q", code, errOut)
	}
	_, errOut, code = cli("audit", "frobnicate")
	if code != exitUsage || !strings.Contains(errOut, "unknown subcommand") {
		t.Fatalf("bad subcommand: %d %q", code, errOut)
	}
	_, _, code = cli("audit", "--verdict", "maybe")
	if code != exitUsage {
		t.Fatalf("bad verdict: %d", code)
	}
}
