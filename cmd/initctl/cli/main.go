// Package cli implements initctl, Vigil's control client: it parses the
// command line, talks to the manager over the control socket
// (vigil/observer/control) with the types of vigil/units/api, and prints
// what it got the way systemctl would, with systemctl's exit statuses.
//
// It is a package rather than a main so that the vigil binary, when it is
// invoked as poweroff, reboot or halt, can run the same code: see Main.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"vigil/observer/control"
	"vigil/units/api"
)

// DefaultSocket is where the manager listens unless told otherwise.
const DefaultSocket = "/run/vigil/control.sock"

// SocketEnv overrides DefaultSocket.
const SocketEnv = "VIGIL_CONTROL_SOCKET"

// Exit statuses, as systemctl uses them.
const (
	exitOK           = 0
	exitFailure      = 1
	exitUsage        = 2
	exitNotRunning   = 3 // is-active, status: unit not active
	exitNoSuchUnit   = 4
	exitAccess       = 5
	exitNotInstalled = 5 // start & co on a unit that does not exist
	exitJobFailed    = 1 // start & co: the job failed (systemctl exits 1)
	exitInterrupted  = 130
)

// command is one initctl verb.
type command struct {
	Name    string
	Aliases []string
	Args    string // usage of the positional arguments
	Summary string
	Flags   []flagSpec
	MinArgs int
	MaxArgs int // -1: no limit
	// UnitSuffix, if set, means the arguments are unit names and one
	// without a type gets this one, as systemctl does: "start web" starts
	// web.service, "isolate rescue" isolates rescue.target.
	UnitSuffix string
	Run        func(e *env, p *parsed) int
}

// globalFlags are accepted by every command, anywhere on the line.
func globalFlags() []flagSpec {
	return []flagSpec{
		{Long: "socket", Value: "PATH", Help: "control socket (default $" + SocketEnv + " or " + DefaultSocket + ")"},
		{Long: "output", Short: 'o', Value: "FORMAT", Help: "output format: text (default) or json"},
		{Long: "quiet", Short: 'q', Help: "print less; is-* commands print nothing"},
		{Long: "no-pager", Help: "accepted for systemctl compatibility (initctl never pages)"},
		{Long: "no-legend", Help: "omit table headers and footers"},
		{Long: "plain", Help: "plain output even on a terminal"},
		{Long: "full", Short: 'l', Help: "do not shorten long fields to the terminal width"},
		{Long: "help", Short: 'h', Help: "show help"},
	}
}

// env is what a command runs with.
type env struct {
	ctx     context.Context
	stdout  io.Writer
	stderr  io.Writer
	tty     bool // stdout is a terminal: aligned, colored, legends
	errTTY  bool // stderr is a terminal: spinner lines
	width   int  // stdout's terminal width, 0 when unknown
	json    bool
	bare    bool // logs -o cat: message text only
	quiet   bool
	legend  bool
	full    bool
	socket  string
	now     func() time.Time
	client  *control.Client
	program string
}

// Main runs initctl with the full command line (args[0] is the program
// name) and returns the exit status. Invoked as poweroff, reboot or halt
// (by the basename of args[0]) it does that action, which is how the vigil
// binary serves those names too.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	program := "initctl"
	if len(args) > 0 {
		program = filepath.Base(args[0])
		args = args[1:]
	}
	e := &env{
		ctx:     ctx,
		stdout:  stdout,
		stderr:  stderr,
		now:     time.Now,
		program: program,
	}
	e.tty, e.width = terminal(stdout)
	e.errTTY, _ = terminal(stderr)
	defer func() {
		if e.client != nil {
			e.client.Close()
		}
	}()

	switch program {
	case "poweroff", "reboot", "halt":
		return e.runCommand(lookup(program), args)
	}

	// Options before the verb are global; find the verb.
	verb := -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				verb = i + 1
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			verb = i
			break
		}
		if takesValue(a) && !strings.Contains(a, "=") {
			i++
		}
	}
	if verb < 0 {
		p, err := parseArgs(args, globalFlags())
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", program, err)
			return exitUsage
		}
		if p.has("help") {
			e.usage(stdout)
			return exitOK
		}
		e.usage(stderr)
		return exitUsage
	}
	name := args[verb]
	rest := append(append([]string{}, args[:verb]...), args[verb+1:]...)
	if name == "help" {
		for _, a := range args[verb+1:] {
			if c := lookup(a); c != nil {
				e.commandUsage(stdout, c)
				return exitOK
			}
		}
		e.usage(stdout)
		return exitOK
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q%s. See '%s --help'.\n", program, name, suggest(name, commandNames(), ""), program)
		return exitUsage
	}
	return e.runCommand(cmd, rest)
}

// takesValue reports whether a global option in its separate-value form
// consumes the next argument.
func takesValue(a string) bool {
	for _, f := range globalFlags() {
		if f.Value != "" && (a == "--"+f.Long || (f.Short != 0 && a == "-"+string(f.Short))) {
			return true
		}
	}
	return false
}

func (e *env) runCommand(cmd *command, args []string) int {
	specs := append(append([]flagSpec{}, globalFlags()...), cmd.Flags...)
	p, err := parseArgs(args, specs)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s %s: %v\n", e.program, cmd.Name, err)
		return exitUsage
	}
	if p.has("help") {
		e.commandUsage(e.stdout, cmd)
		return exitOK
	}
	switch out := p.str("output", "text"); out {
	case "json", "json-pretty":
		e.json = true
	case "text", "short":
	case "cat":
		// journalctl's name for message text only: meaningful for logs.
		if cmd.Name != "logs" {
			fmt.Fprintf(e.stderr, "%s: output format cat is only for logs\n", e.program)
			return exitUsage
		}
		e.bare = true
	default:
		fmt.Fprintf(e.stderr, "%s: unknown output format %q (text or json)\n", e.program, out)
		return exitUsage
	}
	e.quiet = p.has("quiet")
	e.full = p.has("full")
	if p.has("plain") {
		e.tty = false
	}
	e.legend = e.tty && !p.has("no-legend")
	e.socket = p.str("socket", "")
	if e.socket == "" {
		e.socket = os.Getenv(SocketEnv)
	}
	if e.socket == "" {
		e.socket = DefaultSocket
	}
	if len(p.args) < cmd.MinArgs {
		fmt.Fprintf(e.stderr, "%s %s: too few arguments; usage: %s %s %s\n", e.program, cmd.Name, e.program, cmd.Name, cmd.Args)
		return exitUsage
	}
	if cmd.MaxArgs >= 0 && len(p.args) > cmd.MaxArgs {
		fmt.Fprintf(e.stderr, "%s %s: too many arguments; usage: %s %s %s\n", e.program, cmd.Name, e.program, cmd.Name, cmd.Args)
		return exitUsage
	}
	if cmd.UnitSuffix != "" {
		for i, a := range p.args {
			p.args[i] = mangleUnit(a, cmd.UnitSuffix)
		}
	}
	return cmd.Run(e, p)
}

// isUnitType reports whether s is the type part of a unit name.
func isUnitType(s string) bool {
	switch s {
	case "service", "socket", "target", "mount", "automount", "path", "timer", "device", "slice", "scope", "swap":
		return true
	}
	return false
}

// mangleUnit gives a name without a unit type the suffix, as systemd's
// unit_name_mangle does. Patterns and paths are left alone: the manager
// says what is wrong with them.
func mangleUnit(name, suffix string) string {
	if name == "" || strings.ContainsAny(name, "*?[/") {
		return name
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 && isUnitType(name[i+1:]) {
		return name
	}
	return name + suffix
}

// call runs one control call, connecting on first use.
func (e *env) call(method string, args, result any, onProgress func(json.RawMessage)) error {
	if e.client == nil {
		c, err := control.Dial(e.socket)
		if err != nil {
			return &connectError{socket: e.socket, err: err}
		}
		e.client = c
	}
	return e.client.Call(e.ctx, method, args, result, onProgress)
}

type connectError struct {
	socket string
	err    error
}

func (c *connectError) Error() string {
	return fmt.Sprintf("cannot reach the manager at %s: %v", c.socket, errors.Unwrap(c.err))
}

// fail prints what went wrong ("Failed to start foo.service: ...") and maps
// the error to an exit status.
func (e *env) fail(what string, err error) int {
	if errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	var ce *control.Error
	var conn *connectError
	switch {
	case errors.As(err, &conn):
		fmt.Fprintf(e.stderr, "Failed to %s: %v\n", what, err)
		return exitFailure
	case errors.As(err, &ce):
		fmt.Fprintf(e.stderr, "Failed to %s: %s\n", what, ce.Message)
		return exitCode(ce.Code)
	default:
		fmt.Fprintf(e.stderr, "Failed to %s: %v\n", what, err)
		return exitFailure
	}
}

// failNotFound is fail, except that a unit that does not exist makes the
// command exit with code: systemctl's status for it differs by command
// (status 4, start 5, kill 1).
func (e *env) failNotFound(what string, err error, code int) int {
	var ce *control.Error
	if errors.As(err, &ce) && ce.Code == api.ErrNotFound {
		fmt.Fprintf(e.stderr, "Failed to %s: %s\n", what, ce.Message)
		return code
	}
	return e.fail(what, err)
}

// notFound reports whether err is the manager's "no such unit".
func notFound(err error) bool {
	var ce *control.Error
	return errors.As(err, &ce) && ce.Code == api.ErrNotFound
}

// exitCode maps an error frame's code onto systemctl's exit statuses.
func exitCode(code int) int {
	switch code {
	case api.ErrInvalidArgs:
		return exitUsage
	case api.ErrNotFound:
		return exitNoSuchUnit
	case api.ErrAccess: // == control.CodeAccess
		return exitAccess
	default:
		return exitFailure
	}
}

func (e *env) usage(w io.Writer) {
	fmt.Fprintf(w, "%s [OPTIONS...] COMMAND ...\n\nQuery or send control commands to the Vigil manager.\n", e.program)
	groups := []struct {
		title string
		names []string
	}{
		{"Unit commands", []string{"list", "status", "show", "cat", "start", "stop", "restart", "reload", "try-restart", "reload-or-restart", "isolate", "kill", "is-active", "is-failed", "reset-failed"}},
		{"Unit file commands", []string{"enable", "disable", "is-enabled", "check"}},
		{"Jobs and logs", []string{"list-jobs", "cancel", "logs"}},
		{"Observer", []string{"observe", "emit", "observers"}},
		{"Manager", []string{"daemon-reload", "version", "poweroff", "reboot", "halt"}},
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, n := range g.names {
			c := lookup(n)
			fmt.Fprintf(w, "  %-34s %s\n", strings.TrimSpace(c.Name+" "+c.Args), c.Summary)
		}
	}
	fmt.Fprintf(w, "\nOptions:\n")
	printFlags(w, globalFlags())
	fmt.Fprintf(w, "\nSee '%s COMMAND --help' for a command's options.\n", e.program)
}

func (e *env) commandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "%s %s %s\n\n%s\n", e.program, c.Name, c.Args, c.Summary)
	if len(c.Aliases) > 0 {
		fmt.Fprintf(w, "Also: %s\n", strings.Join(c.Aliases, ", "))
	}
	if len(c.Flags) > 0 {
		fmt.Fprintf(w, "\nOptions:\n")
		printFlags(w, c.Flags)
	}
	fmt.Fprintf(w, "\nGlobal options:\n")
	printFlags(w, globalFlags())
}

func printFlags(w io.Writer, specs []flagSpec) {
	for _, f := range specs {
		name := "    --" + f.Long
		if f.Short != 0 {
			name = fmt.Sprintf("-%c, --%s", f.Short, f.Long)
		}
		if f.Value != "" {
			name += "=" + f.Value
		}
		fmt.Fprintf(w, "  %-30s %s\n", name, f.Help)
	}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.Name)
		names = append(names, c.Aliases...)
	}
	sort.Strings(names)
	return names
}
