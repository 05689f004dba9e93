package unitfile

import (
	"fmt"
	"os"
	"os/user"
	"strings"
)

// DefaultExecSearchPath returns where executables named without a slash are
// looked up when a Context does not say, as systemd does for ExecStart=.
func DefaultExecSearchPath() []string {
	return []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
}

// Context carries what loading needs from the manager's environment: the
// values of the host specifiers and where relative executables are searched.
// The zero value is usable: specifiers that need a missing value expand to "".
type Context struct {
	RuntimeDir string // %t: "/run" for the system manager
	Home       string // %h
	User       string // %u: user name of the manager
	UID        string // %U
	Hostname   string // %H
	MachineID  string // %m
	// ExecSearchPath is searched for executables named without a '/';
	// nil means DefaultExecSearchPath.
	ExecSearchPath []string
	// SkipExecCheck turns off the warnings about missing executables (for
	// checking files written for another machine).
	SkipExecCheck bool
}

// DefaultContext describes the running process: its user, home, host name
// and machine ID; the runtime directory is /run for root and
// $XDG_RUNTIME_DIR (else /run/user/UID) for others.
func DefaultContext() Context {
	c := Context{RuntimeDir: "/run", User: "root", UID: "0", Home: "/root"}
	uid := os.Getuid()
	c.UID = fmt.Sprint(uid)
	if u, err := user.LookupId(c.UID); err == nil {
		c.User, c.Home = u.Username, u.HomeDir
	} else if h, err := os.UserHomeDir(); err == nil {
		c.Home = h
	}
	if uid != 0 {
		c.RuntimeDir = os.Getenv("XDG_RUNTIME_DIR")
		if c.RuntimeDir == "" {
			c.RuntimeDir = "/run/user/" + c.UID
		}
	}
	c.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		c.MachineID = strings.TrimSpace(string(b))
	}
	return c
}

func (c *Context) execSearchPath() []string {
	if c.ExecSearchPath != nil {
		return c.ExecSearchPath
	}
	return DefaultExecSearchPath()
}

// specifierExpander expands systemd's %-specifiers for one unit.
type specifierExpander struct {
	ctx  *Context
	name Name
}

// Expand replaces the specifiers in s:
//
//	%n full unit name        %N name without type suffix
//	%p prefix                %P unescaped prefix
//	%i instance              %I unescaped instance
//	%f "/" + unescaped instance, or prefix if there is no instance
//	%j last '-'-part of prefix  %J the same, unescaped
//	%t runtime directory     %h home      %u user    %U uid
//	%H host name             %m machine ID           %% a '%'
//
// An unknown specifier or a trailing '%' is an error naming its offset.
func (e *specifierExpander) Expand(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("lone '%%' at offset %d of %q (write %%%% for a literal '%%')", i, s)
		}
		i++
		v, err := e.value(s[i])
		if err != nil {
			return "", fmt.Errorf("%w at offset %d of %q", err, i-1, s)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (e *specifierExpander) value(spec byte) (string, error) {
	n := e.name
	unesc := func(s string) string {
		u, err := Unescape(s)
		if err != nil {
			return s
		}
		return u
	}
	switch spec {
	case '%':
		return "%", nil
	case 'n':
		return n.String(), nil
	case 'N':
		return strings.TrimSuffix(n.String(), "."+string(n.Type)), nil
	case 'p':
		return n.Prefix, nil
	case 'P':
		return unesc(n.Prefix), nil
	case 'i':
		return n.Instance, nil
	case 'I':
		return unesc(n.Instance), nil
	case 'f':
		src := n.Instance
		if src == "" {
			src = n.Prefix
		}
		p, err := UnescapePath(src)
		if err != nil {
			return "/" + src, nil
		}
		return p, nil
	case 'j':
		return n.Prefix[strings.LastIndexByte(n.Prefix, '-')+1:], nil
	case 'J':
		return unesc(n.Prefix[strings.LastIndexByte(n.Prefix, '-')+1:]), nil
	}
	if e.ctx == nil {
		e.ctx = &Context{}
	}
	switch spec {
	case 't':
		return e.ctx.RuntimeDir, nil
	case 'h':
		return e.ctx.Home, nil
	case 'u':
		return e.ctx.User, nil
	case 'U':
		return e.ctx.UID, nil
	case 'H':
		return e.ctx.Hostname, nil
	case 'm':
		return e.ctx.MachineID, nil
	}
	return "", fmt.Errorf("unknown specifier %%%c", spec)
}

// ExpandSpecifiers expands the %-specifiers in s for the unit named name
// (see the package documentation for the list).
func ExpandSpecifiers(s string, name Name, ctx Context) (string, error) {
	e := specifierExpander{ctx: &ctx, name: name}
	return e.Expand(s)
}
