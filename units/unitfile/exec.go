package unitfile

import (
	"fmt"
	"strconv"
	"strings"
)

// SplitCommandLine splits a command line into words with shell-like
// quoting, as systemd splits ExecStart=:
//   - words are separated by unquoted white space (space, tab, newline);
//   - 'single quotes' keep everything literally;
//   - "double quotes" and unquoted text take backslash escapes: \\ \" \'
//     \$ \  (space) \n \t \r \a \b \f \v \s (space) \xHH \NNN (octal);
//   - "$VAR" and "${VAR}" are kept as written: they are expanded when the
//     command runs, not here.
//
// An unterminated quote or a trailing backslash is an error.
func SplitCommandLine(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at offset %d", i)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					n, err := unescapeAt(s, j, &cur)
					if err != nil {
						return nil, err
					}
					j += n - 1
					continue
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated double quote at offset %d", i)
			}
			i = j
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++ // a continued line
		case c == '\\':
			inWord = true
			n, err := unescapeAt(s, i, &cur)
			if err != nil {
				return nil, err
			}
			i += n - 1
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// unescapeAt decodes the backslash escape at s[i], writes its value and
// returns its length in bytes.
func unescapeAt(s string, i int, out *strings.Builder) (int, error) {
	if i+1 >= len(s) {
		return 0, fmt.Errorf("trailing backslash at offset %d", i)
	}
	switch c := s[i+1]; c {
	case '\\', '"', '\'', '$', ' ', '\t', ';':
		out.WriteByte(c)
	case '\n':
		// A backslash before a newline continues the line.
	case 'n':
		out.WriteByte('\n')
	case 't':
		out.WriteByte('\t')
	case 'r':
		out.WriteByte('\r')
	case 'a':
		out.WriteByte('\a')
	case 'b':
		out.WriteByte('\b')
	case 'f':
		out.WriteByte('\f')
	case 'v':
		out.WriteByte('\v')
	case 's':
		out.WriteByte(' ')
	case 'x':
		if i+4 > len(s) {
			return 0, fmt.Errorf("short \\x escape at offset %d", i)
		}
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return 0, fmt.Errorf("bad \\x escape at offset %d", i)
		}
		out.WriteByte(byte(v))
		return 4, nil
	case '0', '1', '2', '3':
		if i+4 > len(s) {
			return 0, fmt.Errorf("short octal escape at offset %d", i)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return 0, fmt.Errorf("bad octal escape at offset %d", i)
		}
		out.WriteByte(byte(v))
		return 4, nil
	default:
		return 0, fmt.Errorf("unknown escape \\%c at offset %d", c, i)
	}
	return 2, nil
}

// Command is one command of an exec-* key.
type Command struct {
	// Path is the executable: absolute as written, or found in the
	// Context's ExecSearchPath when written without '/'.
	Path string
	// Argv is the argument vector including argv[0]: the first word as
	// written, or with SeparateArgv0 the second word.
	Argv []string

	IgnoreFailure     bool // '-': a non-zero exit status counts as success
	SeparateArgv0     bool // '@': the second word is argv[0]
	NoEnvExpand       bool // ':': $VAR and ${VAR} are not expanded at run time
	FullPrivileges    bool // '+': run without user, group, capability or sandbox settings
	AmbientPrivileges bool // '!': apply user and group, but not the privilege drop (ambient capabilities)
	// AmbientFallback ('!!') is '!' on systems without ambient capabilities,
	// and ignored elsewhere.
	AmbientFallback bool
}

// String renders the command as a command line, quoting where needed.
func (c Command) String() string {
	var b strings.Builder
	if c.IgnoreFailure {
		b.WriteByte('-')
	}
	if c.SeparateArgv0 {
		b.WriteByte('@')
	}
	if c.NoEnvExpand {
		b.WriteByte(':')
	}
	if c.FullPrivileges {
		b.WriteByte('+')
	}
	if c.AmbientFallback {
		b.WriteString("!!")
	} else if c.AmbientPrivileges {
		b.WriteByte('!')
	}
	b.WriteString(quoteWord(c.Path))
	args := c.Argv
	if !c.SeparateArgv0 && len(args) > 0 {
		args = args[1:]
	}
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(quoteWord(a))
	}
	return b.String()
}

func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\n\r\"'\\") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// ParseCommand parses one command given as words (already split): the
// prefixes of the first word are taken off and the executable and argv set.
// Path is as written: Load resolves names without '/' later.
func ParseCommand(words []string) (Command, error) {
	if len(words) == 0 {
		return Command{}, fmt.Errorf("empty command")
	}
	var c Command
	first := words[0]
	i := 0
prefixes:
	for ; i < len(first); i++ {
		switch first[i] {
		case '-':
			c.IgnoreFailure = true
		case '@':
			c.SeparateArgv0 = true
		case ':':
			c.NoEnvExpand = true
		case '+':
			c.FullPrivileges = true
		case '!':
			if c.AmbientPrivileges {
				c.AmbientFallback = true
			}
			c.AmbientPrivileges = true
		default:
			break prefixes
		}
	}
	if c.FullPrivileges && c.AmbientPrivileges {
		return Command{}, fmt.Errorf("prefixes '+' and '!' exclude each other in %q", first)
	}
	if first[:i] != "" && strings.Count(first[:i], "!") > 2 {
		return Command{}, fmt.Errorf("too many '!' prefixes in %q", first)
	}
	c.Path = first[i:]
	if c.Path == "" {
		return Command{}, fmt.Errorf("no executable after the prefixes in %q", first)
	}
	if c.SeparateArgv0 {
		if len(words) < 2 {
			return Command{}, fmt.Errorf("prefix '@' needs argv[0] as the second word in %q", strings.Join(words, " "))
		}
		c.Argv = append([]string(nil), words[1:]...)
	} else {
		c.Argv = append([]string{c.Path}, words[1:]...)
	}
	return c, nil
}

// ParseCommandLine splits a command line with SplitCommandLine and parses
// it with ParseCommand.
func ParseCommandLine(line string) (Command, error) {
	words, err := SplitCommandLine(line)
	if err != nil {
		return Command{}, err
	}
	return ParseCommand(words)
}

// Commands is the list of commands of one exec-* key, run in order.
//
// How TOML values map to commands (see also docs/units.md):
//   - a string is one command line, split with SplitCommandLine;
//   - an array of arrays of strings is several commands, each a word list;
//   - an array of strings is, for exec-start, one command as a word list
//     (["/bin/echo", "a b"]), and for the other exec-* keys a list of
//     command lines (["mkdir -p /run/x", "chown x /run/x"]);
//   - "" or [] removes the commands set so far (in a drop-in: resets them);
//     anything else is appended.
type Commands []Command

func (cs *Commands) decodeValue(raw any, vc *valueCtx) error {
	appendWords := func(words []string) error {
		for i, w := range words {
			x, err := vc.expand(w)
			if err != nil {
				return err
			}
			words[i] = x
		}
		c, err := ParseCommand(words)
		if err != nil {
			return err
		}
		*cs = append(*cs, c)
		return nil
	}
	appendLine := func(line string) error {
		words, err := SplitCommandLine(line)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			return fmt.Errorf("empty command line")
		}
		return appendWords(words)
	}
	switch v := raw.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			*cs = nil
			return nil
		}
		return appendLine(v)
	case []any:
		if len(v) == 0 {
			*cs = nil
			return nil
		}
		if _, nested := v[0].([]any); nested {
			for _, x := range v {
				inner, ok := x.([]any)
				if !ok {
					return typeError("an array of word arrays", x)
				}
				words, err := stringOrList(inner, false, "words")
				if err != nil {
					return err
				}
				if err := appendWords(words); err != nil {
					return err
				}
			}
			return nil
		}
		items, err := stringOrList(v, false, "words")
		if err != nil {
			return err
		}
		if vc.opts.words {
			return appendWords(items)
		}
		for _, line := range items {
			if err := appendLine(line); err != nil {
				return err
			}
		}
		return nil
	}
	return typeError("a command line, an array of words, or an array of word arrays", raw)
}
