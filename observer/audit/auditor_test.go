package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/fanotify"
)

// waitLimit bounds every wait in these tests; a failure never hangs the run.
const waitLimit = 20 * time.Second

// audited is a running loop with a fanotify source and an auditor on it,
// and a directory with programs to run.
type audited struct {
	t       testing.TB
	dir     string
	cfg     string
	logPath string
	loop    *observer.Loop
	a       *Auditor
}

// startAudited writes policy (with @DIR@ replaced by the test directory)
// and starts the auditor on a real fanotify source, or skips where this
// machine gives no permission events. prepare runs before Start.
func startAudited(t testing.TB, policy string, prepare func(*Auditor)) *audited {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fanotify permission events need root")
	}
	h := &audited{t: t, dir: t.TempDir()}
	h.cfg = filepath.Join(h.dir, "etc", "audit.toml")
	h.logPath = filepath.Join(h.dir, "log", "audit.log")
	if err := os.MkdirAll(filepath.Join(h.dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The programs live on a tmpfs of their own: a tree mark covers a whole
	// mount, and a test that went wrong must not hold every exec of the
	// machine's root file system.
	bin := filepath.Join(h.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("vigil-audit-test", bin, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs for the test programs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(bin, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", bin, err)
		}
	})
	for _, name := range []string{"evil", "ok"} {
		copyFile(t, "/bin/true", filepath.Join(bin, name))
	}
	h.writePolicy(policy)
	h.loop = observer.New(observer.Options{Logf: t.Logf})
	a, err := New(Options{Loop: h.loop, ConfigPath: h.cfg, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	// InlineLater, as PID 1 wires it (Inline is tested on its own).
	src, err := fanotify.New(fanotify.Options{Loop: h.loop, Logf: t.Logf, InlineLater: a.InlineLater, Deadline: waitLimit})
	if errors.Is(err, fanotify.ErrUnavailable) {
		t.Skipf("fanotify: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); h.loop.Run(ctx) }()
	if prepare != nil {
		prepare(a)
	}
	h.call(func() {
		if err := a.Start(FanotifyMarker{Source: src}, ""); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() {
		h.call(a.Stop)
		src.Close()
		cancel()
		<-ran
	})
	return h
}

func (h *audited) call(fn func()) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := h.loop.Call(ctx, fn); err != nil {
		h.t.Fatalf("loop call: %v", err)
	}
}

func (h *audited) writePolicy(policy string) {
	h.t.Helper()
	policy = strings.ReplaceAll(policy, "@DIR@", h.dir)
	policy = strings.ReplaceAll(policy, "@LOG@", h.logPath)
	// Replace, as editors do, so a reader never sees half a file.
	tmp := h.cfg + ".new"
	if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.cfg); err != nil {
		h.t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// runShell execs the program from a shell: the exec is done by sh, whose
// image is not Vigil's, so the event goes through the loop and the
// auditor's observer. It returns sh's exit status and output.
func runShell(t *testing.T, program string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", program).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("sh -c %s: %v", program, err)
	}
	return 0, string(out)
}

// runDirect execs the program as the test's own child: the source sees an
// exec by a process still running the test's image and asks Inline.
//
// Go starts children with vfork: the forking thread keeps its P until the
// child has exec'd, and the child's exec waits for the fanotify reader of
// this very process. A garbage collection starting in between would stop
// the world, wait for that P forever, and never let the reader answer. The
// collector is held off meanwhile; see docs/audit.md on what this means
// for PID 1. The forking thread keeps its P, so at least one other P must
// be there for the reader: with GOMAXPROCS=1 (go test -cpu 1, a one-CPU
// cgroup) nothing ran it and the test hung.
func runDirect(t *testing.T, program string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	return exec.CommandContext(ctx, program).Run()
}

// waitRecords waits until the log has a record passing keep.
func (h *audited) waitRecord(what string, keep func(Record) bool) Record {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		recs, _, _ := ReadRecords(h.logPath, 5, 0, RecordFilter{})
		for _, r := range recs {
			if keep(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no audit record of %s; the log has %+v", what, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const denyTmpPolicy = `
mode = "enforce"
log = "@LOG@"
[[rule]]
name = "ok-is-fine"
access = ["exec"]
path = ["@DIR@/bin/ok"]
action = "allow"
[[rule]]
name = "no-tmp-exec"
access = ["exec"]
path = ["@DIR@/bin/**"]
action = "deny"
`

func TestAuditFanotifyDenyExec(t *testing.T) {
	h := startAudited(t, denyTmpPolicy, nil)
	evil := filepath.Join(h.dir, "bin", "evil")
	ok := filepath.Join(h.dir, "bin", "ok")

	// Through the loop: sh execs the program.
	code, out := runShell(t, evil)
	if code == 0 || !strings.Contains(out, "not permitted") {
		t.Fatalf("sh -c %s: exit %d, %q; want EPERM", evil, code, out)
	}
	if code, out := runShell(t, ok); code != 0 {
		t.Fatalf("allowed program failed: exit %d %q", code, out)
	}
	if code, out := runShell(t, "/bin/true"); code != 0 {
		t.Fatalf("unwatched program failed: exit %d %q", code, out)
	}
	// Inline: the test's own child execs it.
	if err := runDirect(t, evil); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("direct exec of %s: %v, want EPERM", evil, err)
	}
	if err := runDirect(t, ok); err != nil {
		t.Fatalf("direct exec of the allowed program: %v", err)
	}
	h.waitRecord("the denied exec via the loop", func(r Record) bool {
		return r.Path == evil && r.Verdict == "deny" && r.Rule == "no-tmp-exec" && r.Via == "loop" && r.Access == "exec" && strings.HasSuffix(r.Exe, "sh")
	})
	h.waitRecord("the denied exec inline", func(r Record) bool {
		return r.Path == evil && r.Verdict == "deny" && r.Via == "inline" && r.Mode == "enforce"
	})
	h.waitRecord("the allowed exec", func(r Record) bool {
		return r.Path == ok && r.Verdict == "allow" && r.Rule == "ok-is-fine"
	})
	var st Status
	h.call(func() { st = h.a.Status() })
	if !st.Enforcing || st.Counters.Denied < 2 || st.Counters.Inline < 2 || len(st.Rules) != 2 || st.Rules[1].Hits < 2 {
		t.Fatalf("status: %+v", st)
	}
}

func TestAuditFanotifyPermissive(t *testing.T) {
	h := startAudited(t, strings.Replace(denyTmpPolicy, `"enforce"`, `"permissive"`, 1), nil)
	evil := filepath.Join(h.dir, "bin", "evil")
	if code, out := runShell(t, evil); code != 0 {
		t.Fatalf("permissive mode denied: exit %d %q", code, out)
	}
	if err := runDirect(t, evil); err != nil {
		t.Fatalf("permissive mode denied the direct exec: %v", err)
	}
	r := h.waitRecord("the would-be denial", func(r Record) bool {
		return r.Path == evil && r.Verdict == "deny" && r.Via == "loop"
	})
	if r.Mode != "permissive" {
		t.Fatalf("record: %+v", r)
	}
	if c := h.a.Counters(); c.WouldDeny < 2 || c.Denied != 0 {
		t.Fatalf("counters: %+v", c)
	}
}

func TestAuditFanotifyDecisionTimeoutOverrulesStuckAuditor(t *testing.T) {
	policy := `
log = "@LOG@"
decision-timeout = "300ms"
timeout-verdict = "deny"
[[rule]]
name = "known-only"
access = ["exec"]
path = ["@DIR@/bin/*"]
sha256 = ["` + strings.Repeat("00", 32) + `"]
action = "allow"
`
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	hashing := make(chan string, 16)
	h := startAudited(t, policy, func(a *Auditor) {
		// An auditor stuck on its digest: it never answers until the end of
		// the test.
		a.hashFile = func(path string) fileHash {
			hashing <- path
			<-unblock
			return fileHash{err: errors.New("stuck")}
		}
	})
	t.Cleanup(release) // before the auditor stops (cleanups run last first)
	evil := filepath.Join(h.dir, "bin", "evil")
	code, out := runShell(t, evil)
	if code == 0 || !strings.Contains(out, "not permitted") {
		t.Fatalf("stuck auditor: exit %d %q; want the timeout-verdict deny", code, out)
	}
	select {
	case p := <-hashing:
		if p != evil {
			t.Fatalf("hashing %s", p)
		}
	default:
		t.Fatal("the auditor never started digesting: the deny came from elsewhere")
	}
	var overruled uint64
	h.call(func() {
		for _, o := range h.loop.Observers() {
			if o.Guest == GuestName && o.Decides {
				overruled = o.Overrul
			}
		}
	})
	if overruled == 0 {
		t.Fatal("the loop did not count the auditor as overruled")
	}
	// Once unstuck, the late answer is recorded, not given.
	release()
	h.waitRecord("the late decision", func(r Record) bool {
		return r.Path == evil && r.Rule == "timeout" && r.Via == "late" && r.Verdict == "deny"
	})
}

func TestAuditFanotifyReload(t *testing.T) {
	h := startAudited(t, "log = \"@LOG@\"\n", nil)
	evil := filepath.Join(h.dir, "bin", "evil")
	if code, out := runShell(t, evil); code != 0 {
		t.Fatalf("no rules yet, but: exit %d %q", code, out)
	}
	h.writePolicy(denyTmpPolicy)
	var err error
	h.call(func() { err = h.a.Reload() })
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := runShell(t, evil); code == 0 {
		t.Fatal("reloaded deny rule not in force")
	}
	// A broken file keeps the rules in force and says where it broke.
	h.writePolicy(denyTmpPolicy + "\n[[rule]]\nname = \"broken\"\naccess = [\"exec\"]\naction = \"forbid\"\n")
	h.call(func() { err = h.a.Reload() })
	if err == nil || !strings.Contains(err.Error(), "audit.toml:18: rule \"broken\": action:") {
		t.Fatalf("broken policy: %v", err)
	}
	if code, _ := runShell(t, evil); code == 0 {
		t.Fatal("a broken reload dropped the rules in force")
	}
	var st Status
	h.call(func() { st = h.a.Status() })
	if !strings.Contains(st.LastError, "audit.toml:18") || st.Counters.ReloadFail != 1 {
		t.Fatalf("status after a broken reload: %+v", st)
	}
	// Watching the file: writing it is enough.
	h.call(func() {
		if err := h.a.WatchConfig(); err != nil {
			t.Error(err)
		}
	})
	before := h.a.Policy()
	h.writePolicy("log = \"@LOG@\"\n")
	deadline := time.Now().Add(waitLimit)
	for h.a.Policy() == before {
		if time.Now().After(deadline) {
			t.Fatal("the rewritten policy was not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out := runShell(t, evil); code != 0 {
		t.Fatalf("rule removed by the watched file still denies: exit %d %q", code, out)
	}
}

// BenchmarkAuditExec is the cost of an exec the auditor judges, against
// the same program where nothing is marked: a shell runs the program b.N
// times. "allowed" matches an allow rule (decided on the loop, one log
// line each); "unmatched" is under the marked tree but matches no rule
// (answered without a log line).
func BenchmarkAuditExec(b *testing.B) {
	h := startAudited(b, denyTmpPolicy, nil)
	copyFile(b, "/bin/true", filepath.Join(h.dir, "bin", "other"))
	plain := filepath.Join(h.dir, "plain")
	copyFile(b, "/bin/true", filepath.Join(plain, "true"))
	for _, c := range []struct{ name, program string }{
		{"unmarked", filepath.Join(plain, "true")},
		{"allowed", filepath.Join(h.dir, "bin", "ok")},
	} {
		b.Run(c.name, func(b *testing.B) {
			script := "i=0; while [ $i -lt " + strconv.Itoa(b.N) + " ]; do " + c.program + " || exit 9; i=$((i+1)); done"
			b.ResetTimer()
			if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		})
	}
}

// TestAuditFanotifyInlineDigest: Vigil's own child execs a program whose
// rule needs its digest; InlineLater digests it on the inline worker (not
// on the fanotify reader), the known binary runs, a changed copy is denied.
func TestAuditFanotifyInlineDigest(t *testing.T) {
	known, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(known)
	policy := `
mode = "enforce"
log = "@LOG@"
[[rule]]
name = "known-ok"
access = ["exec"]
path = ["@DIR@/bin/ok"]
sha256 = ["` + hex.EncodeToString(sum[:]) + `"]
action = "allow"
[[rule]]
name = "rest"
access = ["exec"]
path = ["@DIR@/bin/**"]
action = "deny"
`
	h := startAudited(t, policy, nil)
	ok := filepath.Join(h.dir, "bin", "ok")
	if err := runDirect(t, ok); err != nil {
		t.Fatalf("direct exec of the known binary: %v", err)
	}
	if err := runDirect(t, ok); err != nil {
		t.Fatalf("second direct exec of the known binary: %v", err)
	}
	c := h.a.Counters()
	if c.Inline < 2 || c.HashMisses != 1 || c.HashHits < 1 {
		t.Fatalf("counters %+v: want two inline decisions, one digest, then the cache", c)
	}
	// Append a byte: same path, another file version.
	f, err := os.OpenFile(ok, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	if err := runDirect(t, ok); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("direct exec of the changed binary: %v, want EPERM", err)
	}
	if c := h.a.Counters(); c.HashMisses != 2 {
		t.Errorf("counters %+v: the changed binary was not digested again", c)
	}
}
