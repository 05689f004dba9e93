package dbus

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestTypePropertiesParseShowStrings(t *testing.T) {
	tb := buildTables()
	o := &object{kind: kindUnit, unit: &UnitProps{ID: "k.path", TypeProps: map[string]string{
		"Paths": "path-exists=/a directory-not-empty=/b", "DirectoryMode": "0700", "MakeDirectory": "yes",
		"TimeoutIdleUSec": "infinity", "TriggerLimitBurst": "7", "TimersCalendar": "*-*-* 04:00:00; Mon *-*-*",
	}}}
	get := func(ifc *iface, name string) any {
		t.Helper()
		p := ifc.byName[name]
		if p == nil {
			t.Fatalf("%s has no %s", ifc.name, name)
		}
		return p.get(o)
	}
	if got := get(tb.path, "Paths"); !reflect.DeepEqual(got, []stringPairT{{"PathExists", "/a"}, {"DirectoryNotEmpty", "/b"}}) {
		t.Errorf("Paths = %v", got)
	}
	if got := get(tb.path, "DirectoryMode"); got != uint32(0o700) {
		t.Errorf("DirectoryMode = %v", got)
	}
	if got := get(tb.path, "MakeDirectory"); got != true {
		t.Errorf("MakeDirectory = %v", got)
	}
	if got := get(tb.path, "TriggerLimitBurst"); got != uint32(7) {
		t.Errorf("TriggerLimitBurst = %v", got)
	}
	if got := get(tb.automount, "TimeoutIdleUSec"); got != uint64(math.MaxUint64) {
		t.Errorf("TimeoutIdleUSec = %v", got)
	}
	if got := get(tb.timer, "TimersCalendar").([]timerCalendarT); len(got) != 2 || got[1].Spec != "Mon *-*-*" {
		t.Errorf("TimersCalendar = %v", got)
	}
	if got := get(tb.swap, "Priority"); got != int32(-1) {
		t.Errorf("Priority default = %v", got)
	}
}

func TestSystemctlListTimersAndShowTimer(t *testing.T) {
	files := testUnits()
	files["tick.timer"] = "[unit]\ndescription = \"Tick\"\n[timer]\non-calendar = [\"*-*-* 04:00:00\"]\npersistent = true\nunit = \"once.service\"\n"
	h := newProcHarness(t, files)
	out, code := h.systemctl("start", "tick.timer")
	expectCode(t, "start tick.timer", out, code, 0)
	out, code = h.systemctl("list-timers", "--all")
	expectCode(t, "list-timers", out, code, 0)
	if !strings.Contains(out, "tick.timer") || !strings.Contains(out, "once.service") || !strings.Contains(out, "04:00:00") {
		t.Errorf("list-timers:\n%s", out)
	}
	out, code = h.systemctl("show", "-p", "Persistent", "-p", "TimersCalendar", "tick.timer")
	expectCode(t, "show tick.timer", out, code, 0)
	if !strings.Contains(out, "Persistent=yes") || !strings.Contains(out, "OnCalendar=") {
		t.Errorf("show tick.timer:\n%s", out)
	}
}
