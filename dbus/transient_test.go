package dbus

import (
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

type propT struct {
	Name  string
	Value dbus.Variant
}

type execArgT struct {
	Path   string
	Ignore bool
	Argv   []string
}

type auxT struct {
	Name  string
	Props []propT
}

// TestTransientAndSignalsWithGodbus checks StartTransientUnit's errors and
// the UnitNew, UnitRemoved, JobRemoved and UnitFilesChanged signals.
func TestTransientAndSignalsWithGodbus(t *testing.T) {
	h := newHarness(t, moreUnits())
	conn := godbusClient(t, h.sock)
	signals := make(chan *dbus.Signal, 256)
	conn.Signal(signals)
	mgr := conn.Object(busName, managerPath)
	props := []propT{
		{"Description", dbus.MakeVariant("godbus transient")},
		{"ExecStart", dbus.MakeVariant([]execArgT{{"/bin/sh", false, []string{"/bin/sh", "-c", "exit 0"}}})},
		{"Type", dbus.MakeVariant("oneshot")},
	}
	aux := []auxT{}
	var job dbus.ObjectPath
	if err := mgr.Call(ifaceManager+".StartTransientUnit", 0, "gd.service", "fail", props, aux).Store(&job); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"UnitNew": false, "JobRemoved": false, "UnitRemoved": false}
	timeout := time.After(20 * time.Second)
	for !want["UnitNew"] || !want["JobRemoved"] || !want["UnitRemoved"] {
		select {
		case sig := <-signals:
			name := sig.Name[strings.LastIndexByte(sig.Name, '.')+1:]
			if _, ok := want[name]; ok {
				for _, b := range sig.Body {
					if b == "gd.service" {
						want[name] = true
					}
				}
			}
		case <-timeout:
			t.Fatalf("signals seen: %v", want)
		}
	}
	for _, tc := range []struct {
		name  string
		props []propT
		want  string
	}{
		{"x.service", []propT{{"Frob", dbus.MakeVariant(true)}}, ErrNameInvalidArgs},
		{"x.service", []propT{{"ExecStart", dbus.MakeVariant("not an array")}}, ErrNameInvalidArgs},
		{"x.service", []propT{{"Description", dbus.MakeVariant("no ExecStart")}}, ErrNameInvalidArgs},
		{"x.service", []propT{{"ExecStart", dbus.MakeVariant([]execArgT{{"sh", false, []string{"sh"}}})}}, ErrNameInvalidArgs},
		{"x.scope", props, ErrNameInvalidArgs}, // a scope runs no ExecStart
		{"x.timer", props, ErrNameNotSupported},
		{"bad name", props, ErrNameInvalidArgs},
		{"sleeper.service", props, ErrNameUnitExists},
	} {
		err := mgr.Call(ifaceManager+".StartTransientUnit", 0, tc.name, "fail", tc.props, aux).Err
		if got := dbusErrorName(err); got != tc.want {
			t.Errorf("StartTransientUnit(%s, %v): %v, want %s", tc.name, tc.props, err, tc.want)
		}
	}
	if err := mgr.Call(ifaceManager+".CancelJob", 0, uint32(4242)).Err; dbusErrorName(err) != ErrNameNoSuchJob {
		t.Errorf("CancelJob of an unknown job: %v", err)
	}
	if err := mgr.Call(ifaceManager+".EnableUnitFiles", 0, []string{"inst.service"}, false, false).Err; err != nil {
		t.Fatal(err)
	}
	var links []string
	if err := mgr.Call(ifaceManager+".GetUnitFileLinks", 0, "inst.service", false).Store(&links); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || !strings.HasSuffix(links[0], "test.target.wants/inst.service") {
		t.Errorf("GetUnitFileLinks = %v", links)
	}
	timeout = time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case sig := <-signals:
			seen = sig.Name == ifaceManager+".UnitFilesChanged"
		case <-timeout:
			t.Fatal("no UnitFilesChanged after EnableUnitFiles")
		}
	}
	if err := mgr.Call(ifaceManager+".GetUnitByControlGroup", 0, "/nowhere").Err; dbusErrorName(err) != ErrNameNoSuchUnit {
		t.Errorf("GetUnitByControlGroup of an unknown group: %v", err)
	}
	if err := mgr.Call(ifaceManager+".SetUnitProperties", 0, "sleeper.service", false, []propT{{"CPUWeight", dbus.MakeVariant("x")}}).Err; dbusErrorName(err) != ErrNameInvalidArgs {
		t.Errorf("SetUnitProperties with a mistyped value: %v", err)
	}
}

func TestTransientSpecTranslation(t *testing.T) {
	spec, err := transientSpec("t.service", []propAssignment{
		{"ExecStart", [][]any{{"/bin/echo", true, []string{"echo", "100%"}}}},
		{"Environment", []string{"A=1"}},
		{"Environment", []string{"B=2"}},
		{"MemoryMax", uint64(1 << 20)},
		{"CPUQuotaPerSecUSec", uint64(250000)},
		{"TasksMax", uint64(unknownU64)},
		{"RuntimeMaxUSec", uint64(5_000_000)},
		{"AddRef", true},
		{"ExecStartPre", [][]any{{"/bin/true", false, []string{"true"}}}},
		{"ExecStartPre", [][]any{{"/bin/false", false, []string{"false"}}}},
		{"Description", "from systemd-run"},
		{"Description", "from -p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	seen := map[string]bool{}
	for _, s := range spec.Settings {
		if seen[s.Section+"."+s.Key] {
			t.Errorf("%s.%s set twice", s.Section, s.Key)
		}
		seen[s.Section+"."+s.Key] = true
	}
	for _, s := range spec.Settings {
		got[s.Section+"."+s.Key] = s.Value
	}
	check := func(k string, want any) {
		t.Helper()
		if g := got[k]; !equalAny(g, want) {
			t.Errorf("%s = %#v, want %#v", k, g, want)
		}
	}
	check("service.exec-start", [][]string{{"@-/bin/echo", "echo", "100%%"}})
	check("service.environment", []string{"A=1", "B=2"})
	check("resources.memory-max", "1048576")
	check("resources.cpu-quota", "25%")
	check("resources.tasks-max", "infinity")
	check("service.runtime-max", "5000000us")
	check("unit.description", "from -p")
	check("service.exec-start-pre", [][]string{{"@/bin/true", "true"}, {"@/bin/false", "false"}})
	if !spec.AddRef {
		t.Errorf("AddRef lost")
	}
}

func equalAny(a, b any) bool {
	return strings.TrimSpace(sprint(a)) == strings.TrimSpace(sprint(b))
}

func sprint(v any) string { return sprintf("%#v", v) }

// FuzzTransientProperties decodes arbitrary messages and feeds a
// StartTransientUnit body to the property translation: errors, never
// panics, and whatever is accepted names only known sections.
func FuzzTransientProperties(f *testing.F) {
	seed := func(props []propT) {
		body := []any{"a.service", "fail", props, []auxT{}}
		msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(managerPath),
			dbus.FieldMember:    dbus.MakeVariant("StartTransientUnit"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		if b, err := encodeWire(msg); err == nil {
			f.Add(b)
		}
	}
	seed([]propT{{"ExecStart", dbus.MakeVariant([]execArgT{{"/bin/sh", false, []string{"sh", "-c", "exit 3"}}})},
		{"MemoryMax", dbus.MakeVariant(uint64(1 << 26))}, {"AddRef", dbus.MakeVariant(true)}})
	seed([]propT{{"Environment", dbus.MakeVariant([]string{"A=%n"})}, {"CPUQuotaPerSecUSec", dbus.MakeVariant(uint64(500000))}})
	seed([]propT{{"Nice", dbus.MakeVariant("x")}})
	f.Fuzz(func(t *testing.T, frame []byte) {
		msg, err := decodeFrame(frame)
		if err != nil || len(msg.Body) != 4 {
			return
		}
		props, err := decodeAssignments(msg.Body[2])
		if err != nil {
			return
		}
		setPropertyAssignments(props)
		spec, err := transientSpec("a.service", props)
		if err != nil {
			return
		}
		for _, s := range spec.Settings {
			switch s.Section {
			case "unit", "service", "resources":
			default:
				t.Fatalf("unknown section %q", s.Section)
			}
		}
	})
}

func TestStartupFinishedWhenDefaultTargetIsReached(t *testing.T) {
	h := newHarness(t, moreUnits())
	conn := godbusClient(t, h.sock)
	signals := make(chan *dbus.Signal, 256)
	conn.Signal(signals)
	mgr := conn.Object(busName, managerPath)
	if err := mgr.Call(ifaceManager+".StartUnit", 0, "default.target", "replace").Err; err != nil {
		t.Fatal(err)
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case sig := <-signals:
			if sig.Name != ifaceManager+".StartupFinished" {
				continue
			}
			if len(sig.Body) != 6 {
				t.Fatalf("StartupFinished body %v", sig.Body)
			}
			kernel, _ := sig.Body[2].(uint64)
			userspace, _ := sig.Body[4].(uint64)
			total, _ := sig.Body[5].(uint64)
			if userspace == 0 || total != kernel+userspace {
				t.Errorf("StartupFinished kernel %d userspace %d total %d", kernel, userspace, total)
			}
			var finish uint64
			if err := mgr.Call(ifaceProperties+".Get", 0, ifaceManager, "FinishTimestamp").Store(&finish); err != nil || finish == 0 {
				t.Errorf("FinishTimestamp %d %v", finish, err)
			}
			return
		case <-timeout:
			t.Fatal("no StartupFinished")
		}
	}
}
