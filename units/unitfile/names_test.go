package unitfile

import (
	"os/exec"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in       string
		prefix   string
		instance string
		typ      UnitType
		template bool
		bad      string // substring of the error, "" if valid
	}{
		{in: "foo.service", prefix: "foo", typ: TypeService},
		{in: "getty@tty1.service", prefix: "getty", instance: "tty1", typ: TypeService},
		{in: "getty@.service", prefix: "getty", typ: TypeService, template: true},
		{in: "dev-disk-by\\x2duuid-1234.device", prefix: "dev-disk-by\\x2duuid-1234", typ: TypeDevice},
		{in: "a:b_c.d-e.target", prefix: "a:b_c.d-e", typ: TypeTarget},
		{in: "x@a@b.socket", prefix: "x", instance: "a@b", typ: TypeSocket},
		{in: "mnt-data.mount", prefix: "mnt-data", typ: TypeMount},
		{in: "", bad: "empty"},
		{in: "foo", bad: "no type suffix"},
		{in: "foo.servic", bad: "unknown unit type"},
		{in: ".service", bad: "empty prefix"},
		{in: "@x.service", bad: "empty prefix"},
		{in: "foo bar.service", bad: "not allowed"},
		{in: "föö.service", bad: "not allowed"},
		{in: strings.Repeat("a", 248) + ".service", bad: "longer than 255"},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("ParseName(%q) = %+v, %v; want error with %q", tt.in, n, err, tt.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseName(%q): %v", tt.in, err)
			continue
		}
		if n.Prefix != tt.prefix || n.Instance != tt.instance || n.Type != tt.typ || n.IsTemplate != tt.template {
			t.Errorf("ParseName(%q) = %+v", tt.in, n)
		}
		if n.String() != tt.in {
			t.Errorf("ParseName(%q).String() = %q", tt.in, n.String())
		}
	}
	n, _ := ParseName("getty@tty1.service")
	if n.Template() != "getty@.service" || n.WithInstance("tty2") != "getty@tty2.service" {
		t.Errorf("Template/WithInstance: %q %q", n.Template(), n.WithInstance("tty2"))
	}
	if p, _ := ParseName("plain.service"); p.Template() != "" {
		t.Errorf("plain unit has template %q", p.Template())
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, escaped, path string }{
		{"/mnt/data", "-mnt-data", "mnt-data"},
		{"/", "-", "-"},
		{"/dev/disk/by-uuid/ab-cd", "-dev-disk-by\\x2duuid-ab\\x2dcd", "dev-disk-by\\x2duuid-ab\\x2dcd"},
		{"a b", "a\\x20b", "a\\x20b"},
		{".hidden/x", "\\x2ehidden-x", "\\x2ehidden-x"},
		{"ü", "\\xc3\\xbc", "\\xc3\\xbc"},
		{"//a//b/", "--a--b-", "a-b"},
		{"back\\slash", "back\\x5cslash", "back\\x5cslash"},
	}
	systemdEscape, _ := exec.LookPath("systemd-escape")
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.escaped {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.escaped)
		}
		got, err := EscapePath(tt.in)
		if err != nil || got != tt.path {
			t.Errorf("EscapePath(%q) = %q, %v, want %q", tt.in, got, err, tt.path)
		}
		if systemdEscape == "" {
			continue
		}
		// Cross-check with systemd's own tool.
		out, err := exec.Command(systemdEscape, "--", tt.in).Output()
		if err != nil || strings.TrimSpace(string(out)) != Escape(tt.in) {
			t.Errorf("systemd-escape %q = %q (%v), Escape gives %q", tt.in, out, err, Escape(tt.in))
		}
		out, err = exec.Command(systemdEscape, "--path", "--", tt.in).Output()
		if err != nil || strings.TrimSpace(string(out)) != tt.path {
			t.Errorf("systemd-escape --path %q = %q (%v), EscapePath gives %q", tt.in, out, err, tt.path)
		}
	}
	if systemdEscape == "" {
		t.Log("systemd-escape not installed: not cross-checked")
	}
	if _, err := EscapePath("/a/../b"); err == nil {
		t.Error("EscapePath accepted '..'")
	}
	for _, p := range []string{"/mnt/data", "/", "/a b/c-d/.e"} {
		e, _ := EscapePath(p)
		back, err := UnescapePath(e)
		if err != nil || back != p {
			t.Errorf("UnescapePath(EscapePath(%q)) = %q, %v", p, back, err)
		}
	}
	for _, bad := range []string{`a\x`, `a\x4`, `a\y41`, `a\xzz`} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted", bad)
		}
	}
	if m, _ := MountUnitName("/mnt/data"); m != "mnt-data.mount" {
		t.Errorf("MountUnitName = %q", m)
	}
	if d, _ := DeviceUnitName("/dev/vdb"); d != "dev-vdb.device" {
		t.Errorf("DeviceUnitName = %q", d)
	}
}

func TestExpandSpecifiers(t *testing.T) {
	ctx := Context{RuntimeDir: "/run", Home: "/root", User: "root", UID: "0", Hostname: "box", MachineID: "abc"}
	inst, _ := ParseName("mount-helper@mnt-my\\x2ddisk.service")
	plain, _ := ParseName("foo-bar-baz.socket")
	tests := []struct {
		name Name
		in   string
		want string
		bad  string
	}{
		{inst, "%n|%N|%p|%i", "mount-helper@mnt-my\\x2ddisk.service|mount-helper@mnt-my\\x2ddisk|mount-helper|mnt-my\\x2ddisk", ""},
		{inst, "%I %f %P", "mnt/my-disk /mnt/my-disk mount/helper", ""},
		{plain, "%f %j %J", "/foo/bar/baz baz baz", ""},
		{plain, "%t %h %u %U %H %m", "/run /root root 0 box abc", ""},
		{plain, "100%% sure", "100% sure", ""},
		{plain, "no specifiers", "no specifiers", ""},
		{plain, "bad %z here", "", "unknown specifier %z at offset 4"},
		{plain, "trailing %", "", "lone '%' at offset 9"},
	}
	for _, tt := range tests {
		got, err := ExpandSpecifiers(tt.in, tt.name, ctx)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("Expand(%q) = %q, %v; want error %q", tt.in, got, err, tt.bad)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDefaultSlice(t *testing.T) {
	for name, want := range map[string]string{
		"sshd.service":                       "system.slice",
		"getty@.service":                     "system.slice",
		"getty@tty1.service":                 "system-getty.slice",
		"serial-getty@ttyS0.service":         `system-serial\x2dgetty.slice`,
		"echo@0-1.2.3.4:7-5.6.7.8:9.service": "system-echo.slice",
		`a\x2db@x.socket`:                    `system-a\x5cx2db.slice`,
		"not a name":                         "system.slice",
	} {
		if got := DefaultSlice(name); got != want {
			t.Errorf("DefaultSlice(%q) = %q, want %q", name, got, want)
		}
	}
}
