package unitfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  string
	}{
		{in: "/bin/echo a b", want: []string{"/bin/echo", "a", "b"}},
		{in: "  /bin/echo   a\t b \n", want: []string{"/bin/echo", "a", "b"}},
		{in: `/bin/echo "a b" 'c d'`, want: []string{"/bin/echo", "a b", "c d"}},
		{in: `/bin/echo "a"'b'c`, want: []string{"/bin/echo", "abc"}},
		{in: `/bin/echo 'it''s'`, want: []string{"/bin/echo", "its"}},
		{in: `/bin/echo "say \"hi\""`, want: []string{"/bin/echo", `say "hi"`}},
		{in: `/bin/echo 'no \n escapes'`, want: []string{"/bin/echo", `no \n escapes`}},
		{in: `/bin/echo "tab\there" new\nline`, want: []string{"/bin/echo", "tab\there", "new\nline"}},
		{in: `/bin/echo a\ b`, want: []string{"/bin/echo", "a b"}},
		{in: `/bin/echo \x41\102\s\\`, want: []string{"/bin/echo", `AB \`}},
		{in: `/bin/echo $HOME ${USER} "$X y"`, want: []string{"/bin/echo", "$HOME", "${USER}", "$X y"}},
		{in: `/bin/echo ""`, want: []string{"/bin/echo", ""}},
		{in: `/bin/echo ''`, want: []string{"/bin/echo", ""}},
		{in: "a \\\n b", want: []string{"a", "b"}},
		{in: "", want: nil},
		{in: `/bin/echo "open`, bad: "unterminated double quote at offset 10"},
		{in: `/bin/echo 'open`, bad: "unterminated single quote at offset 10"},
		{in: `/bin/echo trailing\`, bad: "trailing backslash"},
		{in: `/bin/echo \q`, bad: `unknown escape \q`},
		{in: `/bin/echo \x4`, bad: `short \x escape`},
		{in: `/bin/echo \xZZ`, bad: `bad \x escape`},
		{in: `/bin/echo \19`, bad: "octal"},
	}
	for _, tt := range tests {
		got, err := SplitCommandLine(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("SplitCommandLine(%q) = %q, %v; want error %q", tt.in, got, err, tt.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommandLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want Command
		bad  string
	}{
		{in: "/bin/true", want: Command{Path: "/bin/true", Argv: []string{"/bin/true"}}},
		{in: "-/bin/false x", want: Command{Path: "/bin/false", Argv: []string{"/bin/false", "x"}, IgnoreFailure: true}},
		{in: "@/bin/sh mysh -c 'exit 0'", want: Command{Path: "/bin/sh", Argv: []string{"mysh", "-c", "exit 0"}, SeparateArgv0: true}},
		{in: "-@/bin/sh x", want: Command{Path: "/bin/sh", Argv: []string{"x"}, SeparateArgv0: true, IgnoreFailure: true}},
		{in: "+/usr/bin/id", want: Command{Path: "/usr/bin/id", Argv: []string{"/usr/bin/id"}, FullPrivileges: true}},
		{in: "!/usr/bin/id", want: Command{Path: "/usr/bin/id", Argv: []string{"/usr/bin/id"}, AmbientPrivileges: true}},
		{in: "!!/usr/bin/id", want: Command{Path: "/usr/bin/id", Argv: []string{"/usr/bin/id"}, AmbientPrivileges: true, AmbientFallback: true}},
		{in: ":/bin/echo $X", want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", "$X"}, NoEnvExpand: true}},
		{in: "echo hi", want: Command{Path: "echo", Argv: []string{"echo", "hi"}}},
		{in: "", bad: "empty command"},
		{in: "-", bad: "no executable"},
		{in: "+!/bin/x", bad: "exclude each other"},
		{in: "!!!/bin/x", bad: "too many"},
		{in: "@/bin/sh", bad: "needs argv[0]"},
	}
	for _, tt := range tests {
		got, err := ParseCommandLine(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("ParseCommandLine(%q) = %+v, %v; want error %q", tt.in, got, err, tt.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCommandLine(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		// String gives a line that parses back to the same command.
		back, err := ParseCommandLine(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("round trip of %q via %q = %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestCommandsForms(t *testing.T) {
	tests := []struct {
		name  string
		words bool // exec-start
		raw   any
		want  []string // Command.String() of each
		bad   string
	}{
		{name: "string", raw: "/bin/echo 'a b'", want: []string{"/bin/echo 'a b'"}},
		{name: "start words", words: true, raw: []any{"/bin/echo", "a b"}, want: []string{"/bin/echo 'a b'"}},
		{name: "start prefix in words", words: true, raw: []any{"-/bin/false"}, want: []string{"-/bin/false"}},
		{name: "pre lines", raw: []any{"/bin/mkdir -p /run/x", "-/bin/rm /tmp/y"}, want: []string{"/bin/mkdir -p /run/x", "-/bin/rm /tmp/y"}},
		{name: "word arrays", raw: []any{[]any{"/bin/echo", "a b"}, []any{"/bin/true"}}, want: []string{"/bin/echo 'a b'", "/bin/true"}},
		{name: "start word arrays", words: true, raw: []any{[]any{"/bin/a"}, []any{"/bin/b"}}, want: []string{"/bin/a", "/bin/b"}},
		{name: "mixed", raw: []any{[]any{"/bin/a"}, "/bin/b"}, bad: "expected an array of word arrays"},
		{name: "number", raw: int64(1), bad: "got integer 1"},
		{name: "bad quote", raw: "/bin/echo 'x", bad: "unterminated"},
		{name: "empty line in list", raw: []any{"  "}, bad: "empty command line"},
	}
	for _, tt := range tests {
		var cs Commands
		err := cs.decodeValue(tt.raw, &valueCtx{opts: fieldOpts{words: tt.words}})
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("%s: %v, want error %q", tt.name, err, tt.bad)
			}
			continue
		}
		var got []string
		for _, c := range cs {
			got = append(got, c.String())
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	// Appending, then resetting with "" and [].
	cs := Commands{{Path: "/bin/old", Argv: []string{"/bin/old"}}}
	if err := cs.decodeValue("/bin/new", &valueCtx{}); err != nil || len(cs) != 2 {
		t.Errorf("append: %v %v", cs, err)
	}
	if err := cs.decodeValue("", &valueCtx{}); err != nil || cs != nil {
		t.Errorf("reset with \"\": %v %v", cs, err)
	}
	cs = Commands{{Path: "/bin/old"}}
	if err := cs.decodeValue([]any{}, &valueCtx{}); err != nil || cs != nil {
		t.Errorf("reset with []: %v %v", cs, err)
	}
}
