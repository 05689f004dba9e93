package unitfile

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"testing"
	"time"
)

func FuzzLoad(f *testing.F) {
	seeds := []string{
		"[unit]\ndescription = \"x %n\"\nwants = \"a.service b.service\"\n[service]\nexec-start = [\"/bin/echo\", \"a b\"]\n",
		"[service]\nexec-start-pre = [[\"/bin/a\"], [\"-/bin/b\", \"x\"]]\nenvironment = { A = \"1\" }\n[service.limits]\nnofile = \"1:2\"\n",
		"[unit.condition]\npath-exists = [\"|!/x\", \"/y\"]\n[unit]\nassert.first-boot = true\n",
		"[socket]\nlisten-stream = \"[::1]:80\"\naccept = true\n[resources]\nmemory-max = \"50%\"\n",
		"[timer]\non-calendar = \"daily\"\non-boot = [1, \"2min\"]\n",
		"[mount]\nwhat = '/dev/vdb'\nwhere = \"\"\"/mnt/x\"\"\"\n",
		"a = { b = { c = [1, {d = 2}] } }\n[[x]]\ny = 1\n",
		"[service]\ntype = \n",
		"[service]\nexec-start = \"'unterminated\"\n",
		"x = \"\"\"\n\"\"\"\"\n[\"quoted key\".'lit']\n\"k\\\"q\" = 1\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	names := []string{"fuzz.service", "fuzz.socket", "fuzz@inst.timer", "mnt-x.mount", "fuzz.path", "fuzz.target", "x-y.automount"}
	s := newSchema()
	f.Fuzz(func(t *testing.T, data []byte) {
		// An input that takes this long is a hang: fail with every stack.
		debug.SetTraceback("all")
		tm := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input %q", data)) })
		defer tm.Stop()
		ctx := Context{SkipExecCheck: true}
		for _, name := range names {
			n, err := ParseName(name)
			if err != nil {
				t.Fatal(err)
			}
			d := newUnitDecoder(s, &ctx, n)
			d.applyFile("fuzz", data)
			u := d.finish()
			for _, p := range u.Problems {
				if p.Error() == "" {
					t.Fatal("empty problem text")
				}
			}
			if HasErrors(u.Problems) != (u.LoadState == LoadStateBadSetting) {
				t.Fatalf("load state %s with problems %v", u.LoadState, u.Problems)
			}
		}
		// The position scanner must survive any text, valid TOML or not.
		ix := indexKeys(string(data))
		for k, p := range ix {
			if p.line < 1 || p.col < 1 {
				t.Fatalf("key %q at %d:%d", k, p.line, p.col)
			}
		}
	})
}

func FuzzExecLine(f *testing.F) {
	for _, s := range []string{"/bin/echo a b", `-@/bin/sh sh -c 'exit 0'`, `"a b" c\ d \x41 \101`, `!!/x "$Y" ${Z}`, "a \\\n b", `'`, `\`, `:+/x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := SplitCommandLine(line)
		if err != nil {
			return
		}
		c, err := ParseCommand(words)
		if err != nil {
			return
		}
		// What String renders parses back to the same command.
		back, err := ParseCommandLine(c.String())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("%q: parsed %+v, rendered %q, re-parsed %+v, %v", line, c, c.String(), back, err)
		}
	})
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"1min 30s", "500ms", "1.5s", "infinity", "5", "1y 2M 3w", "0.000000001s", "9223372036s",
		"+5s", "1000y", "5ns", "1h 30min", "1h30min", "0.0000019s", "1.500000s", "2 h", "infinity 5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q gave negative %v", s, d)
		}
		if d != Infinity && d%time.Microsecond != 0 {
			t.Fatalf("%q gave %v, finer than systemd's microseconds", s, d)
		}
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("%q = %v, formatted %q, parsed back %v, %v", s, d, FormatDuration(d), back, err)
		}
	})
}

func FuzzSize(f *testing.F) {
	for _, s := range []string{"512M", "1.5K", "50%", "infinity", "1G 512M", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sz, err := ParseSize(s, true)
		if err != nil {
			return
		}
		back, err := ParseSize(sz.String(), true)
		if err != nil || back != sz {
			t.Fatalf("%q = %+v, rendered %q, parsed back %+v, %v", s, sz, sz.String(), back, err)
		}
	})
}

func FuzzName(f *testing.F) {
	for _, s := range []string{"foo.service", "getty@tty1.service", "getty@.service", "a@b@c.socket", "/mnt/da ta", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseName(s); err == nil && n.String() != s {
			t.Fatalf("ParseName(%q).String() = %q", s, n.String())
		}
		// Escape turns '/' into '-' and escapes a real '-', so Unescape
		// gives the input back exactly.
		if u, err := Unescape(Escape(s)); err != nil || u != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, u, err)
		}
	})
}
