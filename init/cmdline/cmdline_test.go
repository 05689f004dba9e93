package cmdline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuotingFlagsAndSeparator(t *testing.T) {
	c := Parse(`BOOT_IMAGE=/vmlinuz root=/dev/vda  quiet  foo="a b c" "bar=x y" ro empty= -- single --init-flag` + "\n")
	want := []Param{
		{Key: "BOOT_IMAGE", Value: "/vmlinuz", HasValue: true},
		{Key: "root", Value: "/dev/vda", HasValue: true},
		{Key: "quiet"},
		{Key: "foo", Value: "a b c", HasValue: true},
		{Key: "bar", Value: "x y", HasValue: true},
		{Key: "ro"},
		{Key: "empty", Value: "", HasValue: true},
		{Key: "single", AfterSeparator: true},
		{Key: "--init-flag", AfterSeparator: true},
	}
	if !reflect.DeepEqual(c.Params, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", c.Params, want)
	}
}

func TestUnbalancedQuoteRunsToEnd(t *testing.T) {
	c := Parse(`a=1 b="x y z`)
	if v, _ := c.Value("b"); v != "x y z" {
		t.Fatalf("b = %q, want %q", v, "x y z")
	}
}

func TestValueEqualSignInValue(t *testing.T) {
	c := Parse(`root=PARTUUID=abc=def`)
	if v, ok := c.Value("root"); !ok || v != "PARTUUID=abc=def" {
		t.Fatalf("root = %q, %v", v, ok)
	}
}

func TestRepeatedKeysLastWinsAndListsKeepAll(t *testing.T) {
	c := Parse("vigil.log-level=info systemd.log_level=debug vigil.wants=a.service systemd.wants=b.service vigil.wants=c.service")
	if v, _ := c.LogLevel(); v != "debug" {
		t.Errorf("LogLevel = %q, want debug (last wins, _ equals -)", v)
	}
	if got, want := c.Wants(), []string{"a.service", "b.service", "c.service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Wants = %v, want %v", got, want)
	}
}

func TestTarget(t *testing.T) {
	cases := []struct {
		line string
		want string
		ok   bool
	}{
		{"root=/dev/vda quiet", "", false},
		{"vigil.unit=foo.target", "foo.target", true},
		{"systemd.unit=emergency.target", EmergencyTarget, true},
		{"emergency", EmergencyTarget, true},
		{"-- -b", EmergencyTarget, true},
		{"rescue", RescueTarget, true},
		{"single", RescueTarget, true},
		{"S", RescueTarget, true},
		{"s", RescueTarget, true},
		{"1", RescueTarget, true},
		{"3", MultiUserTarget, true},
		{"5", GraphicalTarget, true},
		{"single systemd.unit=multi-user.target", MultiUserTarget, true},
		{"vigil.unit=a.target emergency", EmergencyTarget, true},
		{"vigil.unit=", "", false},
		{"single=1", "", false},
	}
	for _, tc := range cases {
		got, ok := Parse(tc.line).Target()
		if got != tc.want || ok != tc.ok {
			t.Errorf("Target(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	if !Parse("emergency").Emergency() || Parse("rescue").Emergency() {
		t.Error("Emergency() wrong")
	}
	if !Parse("single").Rescue() || Parse("emergency").Rescue() {
		t.Error("Rescue() wrong")
	}
}

func TestShowStatus(t *testing.T) {
	cases := []struct {
		line, want string
		set        bool
	}{
		{"", "", false},
		{"quiet", "auto", true},
		{"vigil.show-status", "yes", true},
		{"vigil.show-status=0", "no", true},
		{"systemd.show_status=error", "error", true},
		{"quiet vigil.show-status=yes", "yes", true},
		{"vigil.show-status=bogus", "", false},
	}
	for _, tc := range cases {
		got, set := Parse(tc.line).ShowStatus()
		if got != tc.want || set != tc.set {
			t.Errorf("ShowStatus(%q) = %q, %v; want %q, %v", tc.line, got, set, tc.want, tc.set)
		}
	}
}

func TestDebugShellAndQuiet(t *testing.T) {
	if on, tty := Parse("vigil.debug-shell").DebugShell(); !on || tty != "" {
		t.Errorf("flag: %v %q", on, tty)
	}
	if on, tty := Parse("systemd.debug_shell=/dev/tty9").DebugShell(); !on || tty != "/dev/tty9" {
		t.Errorf("tty: %v %q", on, tty)
	}
	if on, _ := Parse("vigil.debug-shell=no").DebugShell(); on {
		t.Error("=no enabled the shell")
	}
	if on, _ := Parse("quiet").DebugShell(); on {
		t.Error("absent enabled the shell")
	}
	if !Parse("a quiet b").Quiet() || Parse("quiet=1").Quiet() {
		t.Error("Quiet wrong")
	}
}

func TestModulesLoad(t *testing.T) {
	c := Parse("modules-load=virtio_blk,9p rd.modules-load=ext4,, modules_load=autofs4")
	want := []string{"virtio_blk", "9p", "ext4", "autofs4"}
	if got := c.ModulesLoad(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ModulesLoad = %v, want %v", got, want)
	}
}

func TestBool(t *testing.T) {
	c := Parse("a b=off c=maybe d=yes c=1")
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if v, set := c.Bool(key); !set || v != want {
			t.Errorf("Bool(%s) = %v, %v", key, v, set)
		}
	}
	if _, set := c.Bool("zzz"); set {
		t.Error("absent key reported set")
	}
}

func TestReadRealProcCmdline(t *testing.T) {
	raw, err := os.ReadFile(DefaultPath)
	if err != nil {
		t.Skipf("no %s: %v", DefaultPath, err)
	}
	c, err := Read(DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	// Every word without quotes must come back as a parameter.
	if !strings.Contains(string(raw), `"`) {
		words := strings.Fields(string(raw))
		n := 0
		for _, w := range words {
			if w != "--" {
				n++
			}
		}
		if n != len(c.Params) && !strings.Contains(string(raw), " -- ") {
			t.Errorf("%d words, %d params", n, len(c.Params))
		}
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"quiet",
		`root=/dev/vda foo="a b" -- single`,
		`"unterminated`,
		"vigil.unit=rescue.target systemd.wants=x.service modules-load=a,b",
		"a==b =c = \"\" \x00\t\n",
		"vigil.show-status=auto vigil.debug-shell=/dev/tty1 -b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Parse(s)
		for _, p := range c.Params {
			if p.Key == "" && !p.HasValue {
				t.Fatalf("empty flag from %q", s)
			}
			if strings.ContainsRune(p.Key, '"') || strings.ContainsRune(p.Value, '"') {
				t.Fatalf("quote kept in %+v from %q", p, s)
			}
			if !p.HasValue && p.Value != "" {
				t.Fatalf("flag with value %+v", p)
			}
		}
		c.Target()
		c.ShowStatus()
		c.DebugShell()
		c.LogLevel()
		for _, m := range c.ModulesLoad() {
			if m == "" || strings.Contains(m, ",") {
				t.Fatalf("bad module name %q", m)
			}
		}
		// Parsing is stable: re-joining quoted words and parsing again
		// yields the same parameters.
		var b strings.Builder
		for _, p := range c.Params {
			if p.AfterSeparator {
				continue
			}
			if strings.ContainsAny(p.Key+p.Value, " \t\n\r\v\f\x00") || p.Key == "--" {
				return
			}
			b.WriteString(p.Key)
			if p.HasValue {
				b.WriteString("=" + p.Value)
			}
			b.WriteByte(' ')
		}
		again := Parse(b.String())
		var before []Param
		for _, p := range c.Params {
			if !p.AfterSeparator {
				before = append(before, p)
			}
		}
		if len(before) != len(again.Params) {
			t.Fatalf("reparse of %q: %d params, want %d", b.String(), len(again.Params), len(before))
		}
	})
}
