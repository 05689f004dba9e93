package units

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/api"
	"vigil/units/unitfile"
)

func transientOf(name string, argv []string, extra ...TransientSetting) TransientUnit {
	t := TransientUnit{Name: name, Settings: []TransientSetting{
		{"unit", "description", "Transient " + name},
		{"service", "exec-start", [][]string{argv}},
	}}
	t.Settings = append(t.Settings, extra...)
	return t
}

func (h *harness) startTransient(t TransientUnit, ref bool) (string, error) {
	h.t.Helper()
	ch := make(chan string, 1)
	var err error
	h.do(func() {
		var j *Job
		j, err = h.m.StartTransient(t, api.ModeFail, ref)
		if err == nil {
			j.OnDone(func(j *Job) { ch <- j.Result })
		}
	})
	if err != nil {
		return "", err
	}
	return <-ch, nil
}

func TestTransientServiceIsCollectedWhenInactive(t *testing.T) {
	h := newHarness(t, nil)
	res, err := h.startTransient(transientOf("run-ok.service", []string{"/bin/sh", "-c", "exit 0"},
		TransientSetting{"service", "type", "oneshot"}), false)
	if err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v", res, err)
	}
	file := filepath.Join(h.dir, "run", "transient", "run-ok.service")
	waitFor(t, "the transient unit to be collected", func() bool {
		gone := false
		h.do(func() { gone = h.m.Unit("run-ok.service") == nil })
		return gone
	})
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("%s still there after collection: %v", file, err)
	}
}

func TestTransientFailedStaysUntilResetAndShowsExit(t *testing.T) {
	h := newHarness(t, nil)
	res, err := h.startTransient(transientOf("run-bad.service", []string{"/bin/sh", "-c", "exit 3"},
		TransientSetting{"service", "type", "oneshot"}, TransientSetting{"service", "environment", []string{"A=1"}}), true)
	if err != nil || res != api.ResultFailed {
		t.Fatalf("start: %q %v", res, err)
	}
	var rt ServiceRuntime
	var state, fileState string
	var cat api.CatResult
	h.do(func() {
		rt, _ = h.m.ServiceRuntime("run-bad.service")
		state = string(h.m.Unit("run-bad.service").active)
		fileState = h.m.UnitFileState("run-bad.service")
		cat, _ = h.m.Cat("run-bad.service")
	})
	if state != "failed" || fileState != "transient" {
		t.Errorf("state %s, file state %s", state, fileState)
	}
	if rt.ExecMainCode != 1 || rt.ExecMainStatus != 3 || rt.ExecMainPID == 0 || rt.ExecMainExit.IsZero() {
		t.Errorf("runtime %+v, want exited status 3", rt)
	}
	if len(rt.InvocationID) != 16 {
		t.Errorf("invocation ID %x", rt.InvocationID)
	}
	if len(cat.Files) != 1 || !strings.Contains(cat.Files[0].Content, `exec-start = [["/bin/sh", "-c", "exit 3"]]`) {
		t.Errorf("cat: %+v", cat)
	}
	// Referenced and failed: it stays. Unreferenced and reset: it goes.
	h.do(func() { h.m.UnrefUnit("run-bad.service") })
	h.do(func() {})
	h.do(func() {
		if h.m.Unit("run-bad.service") == nil {
			t.Errorf("a failed transient unit was collected before reset-failed")
		}
		h.m.ResetFailed([]string{"run-bad.service"})
	})
	waitFor(t, "collection after reset-failed", func() bool {
		gone := false
		h.do(func() { gone = h.m.Unit("run-bad.service") == nil })
		return gone
	})
}

func TestTransientRejectsBadSettingsAndTakenNames(t *testing.T) {
	h := newHarness(t, map[string]string{"taken.service": "[service]\nexec-start = \"/bin/true\"\n"})
	_, err := h.startTransient(transientOf("run-x.service", []string{"/bin/true"},
		TransientSetting{"service", "type", "sideways"}), false)
	if err == nil || !strings.Contains(err.Error(), "type") {
		t.Errorf("bad type: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(h.dir, "run", "transient", "run-x.service")); !os.IsNotExist(serr) {
		t.Errorf("a rejected transient unit left its file")
	}
	_, err = h.startTransient(transientOf("taken.service", []string{"/bin/true"}), false)
	var ue *UnitExistsError
	if !errors.As(err, &ue) {
		t.Errorf("taken name: %v", err)
	}
	_, err = h.startTransient(transientOf("x.target", []string{"/bin/true"}), false)
	if err == nil {
		t.Errorf("a transient target was accepted")
	}
}

func TestRenderTransientQuotes(t *testing.T) {
	text, err := RenderTransient(TransientUnit{Name: "q.service", Settings: []TransientSetting{
		{"service", "exec-start", [][]string{{"/bin/echo", "a \"b\"\\\n\x01"}}},
		{"unit", "description", "d"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, `[["/bin/echo", "a \"b\"\\\n\u0001"]]`) || strings.Index(text, "[unit]") > strings.Index(text, "[service]") {
		t.Errorf("rendered:\n%s", text)
	}
	if _, err := RenderTransient(TransientUnit{Settings: []TransientSetting{{"service", "bad key", "x"}}}); err == nil {
		t.Errorf("a key with a space was rendered")
	}
	if _, err := RenderTransient(TransientUnit{Settings: []TransientSetting{{"service", "k", "\xff"}}}); err == nil {
		t.Errorf("invalid UTF-8 was rendered")
	}
}

// FuzzRenderTransient: whatever strings a client sends render to a file
// the loader reads back to the same words, or are refused.
func FuzzRenderTransient(f *testing.F) {
	f.Add("exit 3", "desc")
	f.Add("a\"b\\c\n\t\x01", "ü")
	f.Add("$HOME '", "[section]\nx = 1")
	f.Fuzz(func(t *testing.T, arg, desc string) {
		if strings.Contains(arg+desc, "%") {
			return // specifiers: the D-Bus side doubles them
		}
		text, err := RenderTransient(TransientUnit{Name: "f.service", Settings: []TransientSetting{
			{"unit", "description", desc},
			{"service", "exec-start", [][]string{{"/bin/sh", arg}}},
		}})
		if err != nil {
			return
		}
		p := filepath.Join(t.TempDir(), "f.service")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units, problems := unitfile.Check(unitfile.Context{}, p)
		for _, pr := range problems {
			if pr.Severity == unitfile.SeverityError {
				t.Fatalf("rendered text does not load: %v\n%s", pr, text)
			}
		}
		if len(units) != 1 || units[0].Service == nil || len(units[0].Service.ExecStart) != 1 {
			t.Fatalf("rendered text does not load:\n%s", text)
		}
		if got := units[0].Service.ExecStart[0].Argv; len(got) != 2 || got[1] != arg || units[0].Unit.Description != desc {
			t.Fatalf("read back %q / %q, wrote %q / %q", got, units[0].Unit.Description, arg, desc)
		}
	})
}
