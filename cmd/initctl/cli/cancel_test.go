package cli

import (
	"reflect"
	"strings"
	"testing"

	"vigil/units/api"
)

func TestCancel(t *testing.T) {
	m := newTestManager(t)
	if _, errOut, code := m.runCLI("cancel", "7", "8"); code != 0 {
		t.Fatalf("cancel 7 8: %d %s", code, errOut)
	}
	if a := m.lastArgs(api.MethodCancel).(api.CancelArgs); !reflect.DeepEqual(a.IDs, []uint64{7, 8}) {
		t.Errorf("cancel args %+v", a)
	}
	if _, errOut, code := m.runCLI("cancel"); code != 0 || len(m.lastArgs(api.MethodCancel).(api.CancelArgs).IDs) != 0 {
		t.Errorf("cancel (all): %d %s", code, errOut)
	}
	if _, errOut, code := m.runCLI("cancel", "404"); code == 0 || !strings.Contains(errOut, "404") {
		t.Errorf("cancel of an unknown job: %d %q", code, errOut)
	}
	if _, errOut, code := m.runCLI("cancel", "x"); code != exitUsage || !strings.Contains(errOut, "not a job ID") {
		t.Errorf("cancel x: %d %q", code, errOut)
	}
}
