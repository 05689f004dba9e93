package dbus

import "testing"

func TestBusLabelEscape(t *testing.T) {
	for name, want := range map[string]string{
		"foo.service":                           "foo_2eservice",
		"avahi-daemon.service":                  "avahi_2ddaemon_2eservice",
		"-.mount":                               "_2d_2emount",
		"getty@tty1.service":                    "getty_40tty1_2eservice",
		`run-user-0-gnupg-S.gpg\x2dagent.mount`: "run_2duser_2d0_2dgnupg_2dS_2egpg_5cx2dagent_2emount",
		"0foo.service":                          "_30foo_2eservice",
		"":                                      "_",
	} {
		if got := EscapeBusLabel(name); got != want {
			t.Errorf("EscapeBusLabel(%q) = %q, want %q", name, got, want)
		}
		if back := UnescapeBusLabel(want); back != name {
			t.Errorf("UnescapeBusLabel(%q) = %q, want %q", want, back, name)
		}
	}
	if got := UnescapeBusLabel("a_zz_2"); got != "a_zz_2" {
		t.Errorf("invalid escapes are kept: got %q", got)
	}
}

func FuzzBusLabel(f *testing.F) {
	for _, s := range []string{"foo.service", "_2d", "a_", "_", "\xff\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := UnescapeBusLabel(EscapeBusLabel(s)); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
		UnescapeBusLabel(s)
	})
}
