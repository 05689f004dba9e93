package units

import (
	"os"
	"strings"
	"testing"
	"time"

	"vigil/observer/fanotify"
)

// backstopAccess is a lateAccess that also tells its source's backstop,
// as *fanotify.Source does for PID 1.
type backstopAccess struct {
	*lateAccess
}

func (b backstopAccess) Backstop() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src.Backstop()
}

// TestPathHoldTimeoutOverBackstop: a hold-timeout longer than the fanotify
// source's backstop is warned about when the unit starts holding, status
// shows the effective bound, and the opener gets the unit's hold-verdict at
// the backstop rather than at the hold-timeout. A hold-timeout within
// the backstop gets no warning.
func TestPathHoldTimeoutOverBackstop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify permission events need root")
	}
	const backstop = 2 * time.Second
	la := &lateAccess{}
	h := newHarnessWith(t, map[string]string{
		"long.path":    "[path]\npath-changed = \"@DIR@/long\"\nhold = true\nhold-timeout = \"10min\"\nhold-verdict = \"deny\"\n",
		"long.service": "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sleep\", \"600\"]\n",
		"short.path":   "[path]\npath-changed = \"@DIR@/short\"\nhold = true\nhold-timeout = \"1s\"\n",
		"short.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\n" +
			"exec-start = [\"/bin/true\"]\n",
	}, func(o *Options) { o.FileAccess = backstopAccess{la} })
	src, err := fanotify.New(fanotify.Options{Loop: h.loop, Logf: h.logf, Deadline: backstop})
	if err != nil {
		t.Skipf("fanotify: %v", err)
	}
	la.mu.Lock()
	la.src = src
	la.mu.Unlock()
	t.Cleanup(func() { src.Close() })

	os.WriteFile(h.path("long"), []byte("content\n"), 0o644)
	mustStart(t, h, "long.path")
	mustStart(t, h, "short.path")
	if st := h.status("long.path"); !strings.Contains(st.StatusText, "at most 2s") {
		t.Errorf("status text %q does not show the effective bound", st.StatusText)
	}
	if st := h.status("short.path"); strings.Contains(st.StatusText, "at most") {
		t.Errorf("short.path: status text %q has a bound it does not need", st.StatusText)
	}
	logs := h.logText()
	if !strings.Contains(logs, "hold-timeout=10min is longer than the fanotify backstop (2s): openers get hold-verdict (deny) after 2s") {
		t.Errorf("no warning for long.path:\n%s", logs)
	}
	if strings.Contains(logs, "hold-timeout=1s") {
		t.Errorf("a warning for short.path:\n%s", logs)
	}

	// Every open and read of cat is held in turn: each gets hold-verdict
	// (deny) at the backstop, from the loop, never the source's allow.
	started := time.Now()
	r := startReader(t, h.path("long"))
	err = r.wait(t, 30*time.Second)
	if r.out.Len() > 0 || !strings.Contains(r.errb.String(), "Operation not permitted") {
		t.Errorf("cat: %v %q %q, want EPERM (hold-verdict) at the backstop\n%s", err, r.out.String(), r.errb.String(), h.logText())
	}
	if waited := time.Since(started); waited < backstop/2 {
		t.Errorf("the opener went on after %v: it was not held", waited)
	}
	if st := src.Stats(); st.Backstop != 0 {
		t.Errorf("the source's own backstop answered %d holds; the loop should have, with hold-verdict", st.Backstop)
	}
}
