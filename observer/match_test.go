package observer

import (
	"encoding/json"
	"strings"
	"testing"
)

func blockAdd() *Event {
	return &Event{Source: "uevent", Kind: "add", Attrs: map[string]string{
		"SUBSYSTEM": "block", "DEVNAME": "vdb", "DEVTYPE": "disk", "SEQNUM": "1234",
		"MAJOR": "254", "MINOR": "16", "DEVPATH": "/devices/pci0000:00/0000:00:05.0/virtio2/block/vdb",
		"EMPTY": "",
	}}
}

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"source=uevent", true},
		{"source=process", false},
		{"kind=add", true},
		{"kind=remove", false},
		{"kind=remove|add", true},
		{"kind=remove|change", false},
		{"SUBSYSTEM=block DEVNAME=vdb", true},
		{"SUBSYSTEM=block DEVNAME=vda", false},
		{"DEVNAME=vd*", true},
		{"DEVNAME=sd*|vd?", true},
		{"DEVNAME=vd[ab]", true},
		{"DEVNAME=vd[!b]", false},
		{"DEVNAME=vd[!a]", true},
		{"DEVNAME=vd[^b]", false},
		{"DEVNAME=v\\d*", true},
		{"DEVNAME=vd\\*", false},
		{"DEVNAME=v*c", false},
		{"DEVPATH=/devices/*", false}, // path globs: * does not cross /
		{"DEVPATH=/devices/*/*/*/block/vdb", true},
		{"DEVNAME!=vda", true},
		{"DEVNAME!=vdb", false},
		{"DEVNAME!=vda|vdb", false},
		{"DEVNAME!=sd*", true},
		{"MISSING!=x", true}, // an absent attribute equals nothing
		{"MISSING=x", false},
		{"SEQNUM>1000", true},
		{"SEQNUM>1234", false},
		{"SEQNUM>=1234", true},
		{"SEQNUM<1234", false},
		{"SEQNUM<=1234", true},
		{"SEQNUM<1e4", true},
		{"SEQNUM>-1", true},
		{"MAJOR>=254 MINOR<17", true},
		{"DEVNAME>1", false}, // not a number: ordering never holds
		{"MISSING>1", false},
		{"MISSING<1", false},
		{"DEVTYPE?", true},
		{"MISSING?", false},
		{"EMPTY?", true},
		{"EMPTY=", true},
		{"DEVNAME=", false},
		{"source=uevent kind=add SUBSYSTEM=block DEVNAME=vd* DEVTYPE!=partition SEQNUM>=100 MAJOR?", true},
		{"source=uevent kind=add SUBSYSTEM=block DEVNAME=vd* DEVTYPE!=disk", false},
	}
	ev := blockAdd()
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.filter, err)
			continue
		}
		if got := f.Match(ev); got != c.want {
			t.Errorf("%q matched %v, want %v", c.filter, got, c.want)
		}
	}
}

func TestParseFilterRejects(t *testing.T) {
	cases := []struct {
		filter, wantErr string
	}{
		{"=vdb", "expected KEY=VALUE"},
		{"DEVNAME", "expected KEY=VALUE"},
		{"?", "empty key"},
		{"DEVNAME!", "unknown operator"},
		{"SEQNUM>abc", "needs a number"},
		{"SEQNUM>", "needs a number"},
		{"SEQNUM>=1|2", "exactly one number"},
		{"DEVNAME=vd[", "bad glob"},
		{"DEVNAME!=[a-", "bad glob"},
		{"DEV|NAME=x", "not allowed"},
		{"DEV*=x", "not allowed"},
		{"A=b DEV?NAME=x", "not allowed"},
	}
	for _, c := range cases {
		_, err := ParseFilter(c.filter)
		if err == nil {
			t.Errorf("ParseFilter(%q) accepted a malformed filter", c.filter)
			continue
		}
		if !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("ParseFilter(%q) = %v, want an error mentioning %q", c.filter, err, c.wantErr)
		}
	}
}

func TestFilterStringRoundTrip(t *testing.T) {
	for _, s := range []string{
		"",
		"source=uevent kind=add|remove",
		"DEVNAME=vd* SEQNUM>=100 SEQNUM<2e3 MODALIAS? ACTION!=remove|change",
		"EMPTY= A=|b",
	} {
		f := mustFilter(t, s)
		if got := f.String(); got != s {
			t.Errorf("String() = %q, want %q", got, s)
		}
	}
}

// TestFilterFromJSON covers filters that guests send as JSON: they must be
// compiled before they work, and Compile rejects what ParseFilter would.
func TestFilterFromJSON(t *testing.T) {
	var f Filter
	if err := json.Unmarshal([]byte(`{"terms":[{"key":"SEQNUM","op":">","values":["1000"]},{"key":"DEVNAME","op":"=","values":["vd*","sd*"]}]}`), &f); err != nil {
		t.Fatal(err)
	}
	if err := f.Compile(); err != nil {
		t.Fatal(err)
	}
	if !f.Match(blockAdd()) {
		t.Errorf("%s did not match", f)
	}
	if f.String() != "SEQNUM>1000 DEVNAME=vd*|sd*" {
		t.Errorf("String() = %q", f.String())
	}
	for _, bad := range []string{
		`{"terms":[{"key":"A","op":"~","values":["x"]}]}`,
		`{"terms":[{"key":"A","op":"="}]}`,
		`{"terms":[{"key":"","op":"?"}]}`,
		`{"terms":[{"key":"A","op":"<","values":["1","2"]}]}`,
	} {
		var f Filter
		if err := json.Unmarshal([]byte(bad), &f); err != nil {
			t.Fatal(err)
		}
		if err := f.Compile(); err == nil {
			t.Errorf("Compile accepted %s", bad)
		}
	}
}

// TestRegisterKeepsItsOwnFilter: a guest that reuses its filter's slices
// after Register must not change what the observer matches.
func TestRegisterKeepsItsOwnFilter(t *testing.T) {
	l := New(Options{})
	f := mustFilter(t, "DEVNAME=vdb")
	if _, err := l.Register(Observer{Guest: "g", Name: "n", Filter: f}); err != nil {
		t.Fatal(err)
	}
	f.Terms[0].Values[0] = "sda"
	if got := l.Observers()[0].Filter; got != "DEVNAME=vdb" {
		t.Errorf("registered filter changed to %q", got)
	}
}

func TestParseVerdict(t *testing.T) {
	for in, want := range map[string]Verdict{"allow": Allow, "ALLOW": Allow, "": Allow, "deny": Deny, "Deny": Deny} {
		got, err := ParseVerdict(in)
		if err != nil || got != want {
			t.Errorf("ParseVerdict(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != strings.ToLower(want.String()) {
			t.Errorf("String() = %q", got.String())
		}
	}
	if _, err := ParseVerdict("maybe"); err == nil {
		t.Errorf("ParseVerdict accepted maybe")
	}
}

// FuzzParseFilter: nothing panics, and every filter that parses survives
// String and ParseFilter again, matching the same events.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"", "source=uevent kind=add SUBSYSTEM=block DEVNAME=vd* ACTION!=remove SEQNUM>=100 MODALIAS? kind=add|remove",
		"A=", "A=|", "A<=1e3", "A>-0x1p3", "A>=NaN", "A?", "A??", "A=[", "A=\\*", "A!==b", "A=<3", "\x85A=b", "A=b\tB=c",
		"DEVPATH=/devices/*/block/*", "A=[!a-c]x?",
	} {
		f.Add(seed, "vdb", "12")
	}
	f.Fuzz(func(t *testing.T, text, value, number string) {
		f1, err := ParseFilter(text)
		if err != nil {
			return
		}
		s := f1.String()
		f2, err := ParseFilter(s)
		if err != nil {
			t.Fatalf("ParseFilter(%q) = %v; it came from String() of %q", s, err, text)
		}
		if s2 := f2.String(); s2 != s {
			t.Fatalf("String() not stable: %q then %q", s, s2)
		}
		// Events that exercise every term: each key set to the fuzzed
		// value, to the fuzzed number, to each of the term's own values,
		// or absent.
		events := []*Event{{Source: value, Kind: number, Attrs: map[string]string{}}}
		for _, t := range f1.Terms {
			events = append(events,
				&Event{Source: value, Kind: value, Attrs: map[string]string{t.Key: value}},
				&Event{Source: number, Kind: number, Attrs: map[string]string{t.Key: number}})
			for _, v := range t.Values {
				events = append(events, &Event{Source: v, Kind: v, Attrs: map[string]string{t.Key: v}})
			}
		}
		for _, ev := range events {
			if a, b := f1.Match(ev), f2.Match(ev); a != b {
				t.Fatalf("%q matches %v, its round trip %q matches %v, on %v", text, a, s, b, ev)
			}
		}
	})
}
