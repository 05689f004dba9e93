package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/control"
)

// fakeMarker records marks instead of placing them.
type fakeMarker struct{ marks map[string]Access }

func (f *fakeMarker) Mark(path string, access Access, tree bool) (func(), error) {
	key := path
	if tree {
		key += "/**"
	}
	f.marks[key] = access
	return func() { delete(f.marks, key) }, nil
}

func TestAuditControlRequests(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "audit.toml")
	logPath := filepath.Join(dir, "audit.log")
	policy := "log = \"" + logPath + "\"\n[[rule]]\nname = \"x\"\naccess = [\"exec\"]\npath = [\"/opt/x/**\"]\naction = \"deny\"\n"
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	loop := observer.New(observer.Options{Logf: t.Logf})
	a, err := New(Options{Loop: loop, ConfigPath: cfg, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMarker{marks: map[string]Access{}}
	if err := a.Start(fm, ""); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if fm.marks["/opt/x/**"] != AccessExec {
		t.Fatalf("marks: %v", fm.marks)
	}

	call := func(method string, args any) []control.Frame {
		t.Helper()
		req, frames, disconnect, err := control.NewTestRequest(method, args)
		if err != nil {
			t.Fatal(err)
		}
		defer disconnect()
		a.HandleRequest(method, req)
		deadline := time.Now().Add(waitLimit)
		var got []control.Frame
		for {
			got = append(got, frames()...)
			if len(got) > 0 && got[len(got)-1].Final() || time.Now().After(deadline) {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fr := call(MethodStatus, nil)
	var st Status
	if len(fr) != 1 || json.Unmarshal(fr[0].Result, &st) != nil || !st.Loaded || len(st.Rules) != 1 || st.Rules[0].Name != "x" {
		t.Fatalf("status frames: %+v", fr)
	}

	// A broken policy: the call fails with file:line, the rule stays.
	if err := os.WriteFile(cfg, []byte(policy+"mode = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fr = call(MethodReload, nil)
	if len(fr) != 1 || fr[0].Error == nil || !strings.Contains(fr[0].Error.Message, cfg+":") {
		t.Fatalf("broken reload frames: %+v", fr)
	}
	if a.Policy() == nil || len(a.Policy().Rules) != 1 || fm.marks["/opt/x/**"] != AccessExec {
		t.Fatal("a broken reload changed the policy in force")
	}
	// A good one: new marks, old ones gone.
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(policy, "/opt/x/**", "/srv/y")), 0o644); err != nil {
		t.Fatal(err)
	}
	fr = call(MethodReload, nil)
	if len(fr) != 1 || fr[0].Error != nil {
		t.Fatalf("reload frames: %+v", fr)
	}
	if _, old := fm.marks["/opt/x/**"]; old || fm.marks["/srv/y"] != AccessExec {
		t.Fatalf("marks after reload: %v", fm.marks)
	}

	// The log, filtered.
	a.record(Record{Time: time.Now(), PID: 1, Path: "/srv/y", Access: "exec", Rule: "x", Verdict: "deny", Mode: "enforce", Unit: "a.service"})
	a.record(Record{Time: time.Now(), PID: 2, Path: "/srv/y", Access: "exec", Rule: "x", Verdict: "allow", Mode: "enforce", Unit: "b.service"})
	deadline := time.Now().Add(waitLimit)
	for a.Counters().Logged < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fr = call(MethodLog, LogArgs{Filter: RecordFilter{Verdict: "deny"}})
	var recs []Record
	if len(fr) != 1 || json.Unmarshal(fr[0].Result, &recs) != nil || len(recs) != 1 || recs[0].PID != 1 {
		t.Fatalf("log frames: %+v", fr)
	}
	fr = call("audit.nonsense", nil)
	if len(fr) != 1 || fr[0].Error == nil {
		t.Fatalf("unknown method: %+v", fr)
	}
}
