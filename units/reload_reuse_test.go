package units

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// newReuseHarness is a harness whose file cache trusts files at once (as
// if they were written long ago), so that a reload reuses the decodings of
// the units whose files did not change, after one reload that reads them.
func newReuseHarness(t *testing.T, files map[string]string, adjust func(*Options)) *harness {
	t.Helper()
	h := newHarnessWith(t, files, adjust)
	h.do(func() {
		h.m.unitFiles = unitfile.NewFileCacheClock(func() time.Time { return time.Now().Add(time.Hour) })
		h.m.Reload()
	})
	return h
}

// reloadDecoded reloads and gives the units the reload decoded from their files.
func (h *harness) reloadDecoded() (api.ReloadResult, []string) {
	h.t.Helper()
	var res api.ReloadResult
	var decoded []string
	h.do(func() {
		res = h.m.Reload()
		decoded = h.m.unitFiles.Decoded()
	})
	return res, decoded
}

const reuseOneshot = "[unit]\ndescription = \"%s\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n"

// TestReloadDecodesOnlyTheTouchedUnit: a reload after one file changed
// decodes that unit only; the others keep their configuration's values,
// their behaviour and their state.
func TestReloadDecodesOnlyTheTouchedUnit(t *testing.T) {
	h := newReuseHarness(t, map[string]string{
		"a.service": strings.Replace(reuseOneshot, "%s", "A", 1),
		"b.service": strings.Replace(reuseOneshot, "%s", "B", 1),
		"c.target":  "[unit]\ndescription = \"C\"\nwants = \"a.service b.service\"\n",
	}, nil)
	if res, why := h.start("c.target"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if res, decoded := h.reloadDecoded(); len(decoded) != 0 || len(res.Changed) != 0 {
		t.Fatalf("nothing changed, yet the reload decoded %v and changed %v", decoded, res.Changed)
	}
	var behaviourBefore Behaviour
	h.do(func() { behaviourBefore = h.m.Unit("a.service").behaviour })
	h.write(map[string]string{"b.service": strings.Replace(reuseOneshot, "%s", "B changed", 1)})
	res, decoded := h.reloadDecoded()
	if !slices.Equal(decoded, []string{"b.service"}) || !slices.Equal(res.Changed, []string{"b.service"}) {
		t.Fatalf("one file touched: decoded %v, changed %v; want b.service for both", decoded, res.Changed)
	}
	h.do(func() {
		a, b := h.m.Unit("a.service"), h.m.Unit("b.service")
		if a.Description != "A" || a.cfg.Service.Type != unitfile.ServiceOneshot || !a.cfg.Service.RemainAfterExit {
			t.Errorf("a.service lost its configuration: %q %+v", a.Description, a.cfg.Service)
		}
		if a.behaviour != behaviourBefore {
			t.Error("a.service's behaviour was replaced")
		}
		if b.Description != "B changed" {
			t.Errorf("b.service description %q after the reload", b.Description)
		}
		if !a.hasDep(WantedBy, "c.target") || !h.m.Unit("c.target").hasDep(Wants, "b.service") {
			t.Error("the graph lost the dependencies of unchanged units")
		}
	})
	for _, name := range []string{"a.service", "b.service", "c.target"} {
		if state, _ := h.state(name); state != "active" {
			t.Errorf("%s is %s after the reload, want active", name, state)
		}
	}
}

// TestReloadGivesBehavioursTheirOwnConfiguration: a behaviour that changes
// the configuration it was given (as an automount keeps its old where)
// does not carry the change into the next reload of unchanged files.
func TestReloadGivesBehavioursTheirOwnConfiguration(t *testing.T) {
	h := newReuseHarness(t, map[string]string{
		"a.service": "[unit]\ndescription = \"A\"\nafter = \"x.target\"\n[service]\nexec-start = \"/bin/sleep 1\"\nenvironment = { K = \"file\" }\n",
	}, nil)
	h.reloadDecoded()
	h.do(func() {
		cfg := h.m.Unit("a.service").cfg
		cfg.Unit.Description = "changed at run time"
		cfg.Unit.After[0] = "changed.target"
		cfg.Service.Environment[0] = "K=changed"
		cfg.Service.ExecStart[0].Argv[1] = "99"
	})
	if _, decoded := h.reloadDecoded(); len(decoded) != 0 {
		t.Fatalf("decoded %v, want the decoding reused", decoded)
	}
	h.do(func() {
		cfg := h.m.Unit("a.service").cfg
		if cfg.Unit.Description != "A" || cfg.Unit.After[0] != "x.target" || cfg.Service.Environment[0] != "K=file" || cfg.Service.ExecStart[0].Argv[1] != "1" {
			t.Errorf("changes made at run time survived a reload: %q %v %v %v", cfg.Unit.Description, cfg.Unit.After, cfg.Service.Environment, cfg.Service.ExecStart[0].Argv)
		}
	})
}

// TestReloadSeesWhatIsNotTheUnitsFiles: with the decodings of unchanged
// files reused, a reload still sees a changed drop-in, a new .wants link,
// a new alias, a changed environment file, a generator's new output and
// a new host name.
func TestReloadSeesWhatIsNotTheUnitsFiles(t *testing.T) {
	generated := "first"
	h := newReuseHarness(t, map[string]string{
		"a.service": "[unit]\ndescription = \"A\"\n[service]\ntype = \"oneshot\"\nenvironment-file = \"@DIR@/env\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo $FOO > @DIR@/out\"]\n",
		"b.service": strings.Replace(reuseOneshot, "%s", "on %H", 1),
		"c.target":  "[unit]\ndescription = \"C\"\n",
	}, func(o *Options) {
		o.Generators = []Generator{func(dir string) []error {
			text := "[unit]\ndescription = \"" + generated + "\"\n"
			if err := os.WriteFile(filepath.Join(dir, "gen.target"), []byte(text), 0o644); err != nil {
				return []error{err}
			}
			return nil
		}}
	})
	if err := os.WriteFile(h.path("env"), []byte("FOO=one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, why := h.start("a.service"); res != api.ResultDone || strings.TrimSpace(readFile(t, h.path("out"))) != "one" {
		t.Fatalf("first run: %s (%s), out %q", res, why, readFile(t, h.path("out")))
	}
	h.reloadDecoded()

	h.write(map[string]string{"a.service.d/10-desc.toml": "[unit]\ndescription = \"A from a drop-in\"\n"})
	if err := os.MkdirAll(filepath.Join(h.units, "c.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.units, "b.service"), filepath.Join(h.units, "c.target.wants", "b.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.units, "a.service"), filepath.Join(h.units, "other-a.service")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.path("env"), []byte("FOO=two, longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.do(func() {
		generated = "second, longer"
		h.m.opts.Specifiers.Hostname = "renamed-host"
	})
	h.reloadDecoded()
	h.do(func() {
		if d := h.m.Unit("a.service").Description; d != "A from a drop-in" {
			t.Errorf("changed drop-in: description %q", d)
		}
		if !h.m.Unit("c.target").hasDep(Wants, "b.service") || !h.m.Unit("b.service").hasDep(WantedBy, "c.target") {
			t.Error("new .wants link: c.target does not want b.service")
		}
		if u := h.m.Unit("other-a.service"); u == nil || u.Name != "a.service" {
			t.Errorf("new alias other-a.service leads to %v", u)
		}
		if d := h.m.Unit("gen.target").Description; d != "second, longer" {
			t.Errorf("generator output: description %q", d)
		}
		if d := h.m.Unit("b.service").Description; d != "on renamed-host" {
			t.Errorf("%%H after the host name changed: description %q", d)
		}
	})
	if res, why := h.start("a.service"); res != api.ResultDone || strings.TrimSpace(readFile(t, h.path("out"))) != "two, longer" {
		t.Fatalf("after the environment file changed: %s (%s), out %q", res, why, readFile(t, h.path("out")))
	}
}

// TestReloadKeepsSetProperty: set-property's drop-in is a file like any
// other: the reload after it decodes the unit again and keeps the value,
// and the next set-property is seen as well.
func TestReloadKeepsSetProperty(t *testing.T) {
	h := newReuseHarness(t, map[string]string{"a.service": strings.Replace(reuseOneshot, "%s", "A", 1)}, nil)
	weight := func() int {
		var w int
		h.do(func() {
			if r := h.m.Unit("a.service").cfg.Resources; r != nil && r.CPUWeight != nil {
				w = *r.CPUWeight
			}
		})
		return w
	}
	for _, want := range []int{50, 700} {
		var err error
		h.do(func() {
			_, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "a.service", Properties: []string{"cpu-weight=" + strconv.Itoa(want)}})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := weight(); got != want {
			t.Fatalf("after set-property: cpu-weight %d, want %d", got, want)
		}
		_, decoded := h.reloadDecoded()
		if !slices.Contains(decoded, "a.service") {
			t.Fatalf("the reload after set-property decoded %v, want a.service", decoded)
		}
		if got := weight(); got != want {
			t.Fatalf("after set-property and a reload: cpu-weight %d, want %d", got, want)
		}
		if _, decoded := h.reloadDecoded(); len(decoded) != 0 {
			t.Fatalf("the second reload decoded %v", decoded)
		}
		if got := weight(); got != want {
			t.Fatalf("after a reload that reused the decoding: cpu-weight %d, want %d", got, want)
		}
	}
}
