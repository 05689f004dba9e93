package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vigil/observer"
)

// TestInlineWorkerComesBackAfterPanics: a digest that panics still
// answers its held exec (with the policy's timeout verdict, here deny)
// and the worker is run again: after two panics the next exec of the
// known binary is digested and allowed. The restarts show in WorkerStats.
func TestInlineWorkerComesBackAfterPanics(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	content := []byte("#!/bin/true\nknown\n")
	if err := os.WriteFile(prog, content, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "audit.toml")
	policy := `
mode = "enforce"
timeout-verdict = "deny"
log = "` + filepath.Join(dir, "audit.log") + `"
[[rule]]
name = "known-binary"
access = ["exec"]
path = ["` + prog + `"]
sha256 = ["` + sha256Of(t, content) + `"]
action = "allow"
`
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{ConfigPath: cfg, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	var panics atomic.Int32
	real := a.hashFile
	a.hashFile = func(p string) fileHash {
		if panics.Add(1) <= 2 {
			panic("digest test panic")
		}
		return real(p)
	}
	answers := make(chan observer.Verdict, 4)
	decide := func() observer.Verdict {
		t.Helper()
		if v, decided := a.InlineLater(execEvent(prog), func(v observer.Verdict) { answers <- v }); decided {
			return v
		}
		select {
		case v := <-answers:
			return v
		case <-time.After(waitLimit):
			t.Fatal("the held exec was never answered")
			return observer.Allow
		}
	}
	for i := 0; i < 2; i++ {
		if v := decide(); v != observer.Deny {
			t.Fatalf("exec %d, whose digest panicked: %s, want the timeout verdict deny", i, v)
		}
	}
	if v := decide(); v != observer.Allow {
		t.Fatalf("exec after the restarts: %s, want allow (the worker digests again)", v)
	}
	var inline observer.KeeperStats
	for _, st := range a.WorkerStats() {
		if st.What == "audit inline hash worker" {
			inline = st
		}
	}
	if inline.Restarts < 2 || inline.State != observer.KeeperRunning || !strings.Contains(inline.LastError, "digest test panic") {
		t.Errorf("inline worker %+v: want 2 restarts, running, the panic as last error", inline)
	}
}

// TestLogWriterComesBackAfterPanics: a writer that panics on two batches
// counts them as dropped, is run again each time, and writes the next
// record to the file; Close still drains and stops it.
func TestLogWriterComesBackAfterPanics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := startLogWriter(path, 1<<20, 1, t.Logf)
	var panics atomic.Int32
	hook := func() {
		if panics.Add(1) <= 2 {
			panic("log test panic")
		}
	}
	w.beforeBatch.Store(&hook)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rec := func(path string) Record {
		return Record{Time: time.Now(), PID: 7, Path: path, Access: "exec", Rule: "r", Verdict: "deny", Mode: "enforce"}
	}
	for i := 1; i <= 2; i++ {
		w.Write(rec("/lost"))
		waitFor("the panicking batch to be counted as dropped", func() bool { return w.dropped.Load() == uint64(i) })
	}
	w.Write(rec("/kept"))
	waitFor("the record after the restarts to be written", func() bool { return w.written.Load() == 1 })
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "/kept") || strings.Contains(string(data), "/lost") {
		t.Errorf("log file %q (%v): want only the record after the restarts", data, err)
	}
	if st := w.keeper.Stats(); st.Restarts < 2 || !strings.Contains(st.LastError, "log test panic") {
		t.Errorf("writer keeper %+v: want 2 restarts and the panic as last error", st)
	}
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
}
