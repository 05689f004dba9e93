package exec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExpandArgv(t *testing.T) {
	env := []string{"A=one two", "B=", "C=x", "C=last", "EMPTY="}
	cases := []struct {
		in, want []string
	}{
		{[]string{"$A"}, []string{"one", "two"}},
		{[]string{"${A}"}, []string{"one two"}},
		{[]string{"$B", "$MISSING", "z"}, []string{"z"}},
		{[]string{"${C}"}, []string{"last"}},
		{[]string{"pre${C}post", "$C$C"}, []string{"prelastpost", "$C$C"}},
		{[]string{"$$", "a$$b", "$"}, []string{"$", "a$b", "$"}},
		{[]string{"${EMPTY:-d}", "${C:-d}", "${C:+alt}", "${EMPTY:+alt}"}, []string{"d", "last", "alt", ""}},
		{[]string{"${unterminated", "${1BAD}", "${A:?x}"}, []string{"${unterminated", "${1BAD}", "${A:?x}"}},
	}
	for _, c := range cases {
		if got := ExpandArgv(c.in, env); !slices.Equal(got, c.want) {
			t.Errorf("ExpandArgv(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzExpandArgv(f *testing.F) {
	f.Add("$A ${A} x${B}y $$ ${C:-d} ${", "A=a b")
	f.Add("$", "=")
	f.Fuzz(func(t *testing.T, words, env string) {
		in := strings.Split(words, " ")
		out := ExpandArgv(in, strings.Split(env, "\n"))
		if !strings.Contains(words, "$") && !slices.Equal(in, out) {
			t.Errorf("words without $ changed: %q -> %q", in, out)
		}
	})
}

const testPasswd = `root:x:0:0:root:/root:/bin/bash
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:x:notanumber:1::/:/bin/sh
short:x:1
+nisentry::::::
svc:x:990:991:Service:/var/lib/svc:/bin/false
`

const testGroup = `root:x:0:
nogroup:x:65534:
svcgroup:x:991:alice,svc
audio:x:29:svc, bob
broken:x:zz:svc
`

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLookupUser(t *testing.T) {
	passwd := writeTemp(t, "passwd", testPasswd)
	u, err := lookupUserIn(passwd, "svc")
	if err != nil || u.UID != 990 || u.GID != 991 || u.Home != "/var/lib/svc" || u.Shell != "/bin/false" {
		t.Errorf("svc = %+v, %v", u, err)
	}
	if u, err := lookupUserIn(passwd, "65534"); err != nil || u.Name != "nobody" {
		t.Errorf("numeric 65534 = %+v, %v", u, err)
	}
	if u, err := lookupUserIn(passwd, "4711"); err != nil || u.UID != 4711 || u.GID != 4711 {
		t.Errorf("numeric without entry = %+v, %v", u, err)
	}
	_, err = lookupUserIn(passwd, "nobody2")
	if !errors.Is(err, ErrUnknownUser) || err.Error() != "user nobody2: unknown user" {
		t.Errorf("unknown user: %v", err)
	}
	for _, bad := range []string{"broken", "short", "+nisentry", "4294967295"} {
		if _, err := lookupUserIn(passwd, bad); err == nil {
			t.Errorf("%q resolved", bad)
		}
	}
	if _, err := lookupUserIn(filepath.Join(t.TempDir(), "missing"), "root"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing passwd: %v", err)
	}
}

func TestLookupGroupAndMembers(t *testing.T) {
	group := writeTemp(t, "group", testGroup)
	if g, err := lookupGroupIn(group, "svcgroup"); err != nil || g.GID != 991 {
		t.Errorf("svcgroup = %+v, %v", g, err)
	}
	if _, err := lookupGroupIn(group, "nope"); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("unknown group: %v", err)
	}
	gids, err := memberGroupsIn(group, "svc")
	if err != nil || !slices.Equal(gids, []uint32{991, 29}) {
		t.Errorf("groups of svc = %v, %v", gids, err)
	}
}

func TestLookupOnThisSystem(t *testing.T) {
	uid, _, home, _, err := LookupUser("root")
	if err != nil || uid != 0 || home == "" {
		t.Errorf("root = %d %q %v", uid, home, err)
	}
	if gid, err := LookupGroup("root"); err != nil || gid != 0 {
		t.Errorf("group root = %d, %v", gid, err)
	}
}

func FuzzParsePasswd(f *testing.F) {
	f.Add(testPasswd)
	f.Add("a:b:c:d:e:f:g\n::::::\n")
	f.Fuzz(func(t *testing.T, text string) {
		users, _ := ParsePasswd(strings.NewReader(text))
		for _, u := range users {
			if u.Name == "" || u.UID == 1<<32-1 {
				t.Errorf("bad entry accepted: %+v", u)
			}
		}
	})
}

func FuzzParseGroup(f *testing.F) {
	f.Add(testGroup)
	f.Add("g:x:1:a,,b,\n")
	f.Fuzz(func(t *testing.T, text string) {
		groups, _ := ParseGroup(strings.NewReader(text))
		for _, g := range groups {
			if slices.Contains(g.Members, "") {
				t.Errorf("empty member in %+v", g)
			}
		}
	})
}

func FuzzDecodeTrampoline(f *testing.F) {
	good, _ := (&trampolineSettings{Path: "/bin/true", StatusFD: 4, Bounding: []int{1}, HasBounding: true}).encode()
	f.Add(good, "3 2 /x")
	f.Add(`{"path":"/x","status_fd":3,"nice":99}`, "99 -1 y")
	f.Fuzz(func(t *testing.T, settings, report string) {
		if s, err := decodeTrampolineSettings(settings); err == nil && (s.Path == "" || s.StatusFD < 3) {
			t.Errorf("accepted %q", settings)
		}
		err := decodeStatusReport([]byte(report))
		if _, ok := StepOf(err); !ok {
			t.Errorf("report %q decoded to %v", report, err)
		}
	})
}

func TestParseNames(t *testing.T) {
	for _, n := range []string{"CAP_NET_BIND_SERVICE", "net_bind_service", "cap_Net_Bind_Service", "10"} {
		if c, err := ParseCapability(n); err != nil || c != 10 {
			t.Errorf("ParseCapability(%q) = %d, %v", n, c, err)
		}
	}
	if _, err := ParseCapability("CAP_FLY"); err == nil {
		t.Error("CAP_FLY parsed")
	}
	if CapabilityName(21) != "CAP_SYS_ADMIN" {
		t.Errorf("CapabilityName(21) = %s", CapabilityName(21))
	}
	for _, n := range []string{"nofile", "LimitNOFILE", "NOFILE"} {
		if r, err := ParseRlimit(n); err != nil || RlimitName(r) != "nofile" {
			t.Errorf("ParseRlimit(%q) = %d, %v", n, r, err)
		}
	}
	if _, err := ParseRlimit("bananas"); err == nil {
		t.Error("bananas parsed")
	}
}
