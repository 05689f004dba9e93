package rulelines

import "testing"

func TestScan(t *testing.T) {
	src := `mode = "enforce"
# a comment = not a key
"log" = "/x"

[[rule]]
name = "a"
path = ["/tmp/*"]
  [[ "rule" ]]  # quoted, blanks
action = "deny"
name = "b"
name = "again"
`
	ix := Scan(src)
	for _, c := range []struct {
		got, want int
		what      string
	}{
		{ix.Top("mode"), 1, "top mode"},
		{ix.Top("log"), 3, "top quoted key"},
		{ix.Top("missing"), 1, "top missing"},
		{ix.Rule(0, "path"), 7, "rule 0 path"},
		{ix.Rule(0, "action"), 5, "rule 0 without action: its header"},
		{ix.Rule(1, "action"), 9, "rule 1 action"},
		{ix.Rule(1, "name"), 10, "rule 1 first name"},
		{ix.Rule(5, "name"), 1, "no such rule"},
		{ix.RuleWithKey("action"), 1, "first rule with action"},
		{ix.RuleWithKey("nothing"), -1, "no rule with the key"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
}

func FuzzScan(f *testing.F) {
	f.Add("a = 1\n[[rule]]\nb = 2\n")
	f.Add("[[rule\n=\n[[]]\n")
	f.Fuzz(func(t *testing.T, src string) {
		ix := Scan(src)
		for i := -1; i <= len(ix.headers); i++ {
			if l := ix.Rule(i, "b"); l < 1 {
				t.Fatalf("line %d < 1", l)
			}
		}
		_ = ix.Top("a")
		_ = ix.RuleWithKey("b")
	})
}
