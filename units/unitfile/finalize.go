package unitfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// finalize runs after every file of a unit was applied: defaults that
// depend on other keys, checks across keys, and the executables' lookup.
func (d *unitDecoder) finalize() {
	if d.parseFailed {
		return
	}
	u := d.unit
	if s := u.Service; s != nil {
		d.finalizeService(s)
	}
	if s := u.Socket; s != nil {
		d.finalizeSocket(s)
		d.checkCommands("socket", []string{"exec-start-pre", "exec-start-post", "exec-stop-pre", "exec-stop-post"},
			[]*Commands{&s.ExecStartPre, &s.ExecStartPost, &s.ExecStopPre, &s.ExecStopPost}, &s.ExecContext)
	}
	if s := u.Mount; s != nil {
		d.finalizeWhere("mount", &s.Where)
		if s.What == "" {
			d.keyProblem(SeverityError, "mount", "what", "is required: the device, file or remote file system to mount")
		}
	}
	if s := u.Automount; s != nil {
		d.finalizeWhere("automount", &s.Where)
	}
	if s := u.Swap; s != nil {
		d.finalizeSwapWhat(s)
	}
	if (u.Mount != nil || u.Swap != nil || u.Type == TypeDevice) && !d.isSet("unit", "ignore-on-isolate") {
		// systemd's default for mounts, swaps and devices: isolating a
		// target neither unmounts file systems nor "unplugs" devices
		// (which would stop everything bound to them).
		u.Unit.IgnoreOnIsolate = true
	}
	if s := u.Timer; s != nil {
		if len(s.OnActive)+len(s.OnBoot)+len(s.OnStartup)+len(s.OnUnitActive)+len(s.OnUnitInactive)+len(s.OnCalendar) == 0 && !s.OnClockChange && !s.OnTimezoneChange {
			d.keyProblem(SeverityError, "timer", "", "no trigger: set on-calendar, on-active, on-boot, on-startup, on-unit-active or on-unit-inactive")
		}
		d.defaultTriggered("timer", &s.Unit)
	}
	if s := u.Path; s != nil {
		if len(s.PathExists)+len(s.PathExistsGlob)+len(s.PathChanged)+len(s.PathModified)+len(s.DirectoryNotEmpty) == 0 {
			d.keyProblem(SeverityError, "path", "", "no path to watch: set path-exists, path-exists-glob, path-changed, path-modified or directory-not-empty")
		}
		d.defaultTriggered("path", &s.Unit)
	}
}

// keyProblem reports a problem at the place where section.key was last
// set, or at the section's header of the unit's file.
func (d *unitDecoder) keyProblem(sev Severity, section, key, msg string) {
	f := d.setBy[section+"."+key]
	if f == nil {
		f = d.fragmentSource(section)
	}
	if key == "" {
		d.problemAt(f, sev, section, key, msg, section)
		return
	}
	d.problemAt(f, sev, section, key, msg, section, key)
}

// fragmentSource gives any applied file that set a key of section, so that
// section-level problems point at its header.
func (d *unitDecoder) fragmentSource(section string) *fileSource {
	var best *fileSource
	for k, f := range d.setBy {
		if strings.HasPrefix(k, section+".") && (best == nil || f.path < best.path) {
			best = f
		}
	}
	if best == nil && d.unit.Fragment != "" {
		best = &fileSource{path: d.unit.Fragment}
		if data, err := os.ReadFile(d.unit.Fragment); err == nil {
			best.src = string(data)
		}
	}
	return best
}

func (d *unitDecoder) isSet(section, key string) bool {
	_, ok := d.setBy[section+"."+key]
	return ok
}

func (d *unitDecoder) finalizeService(s *ServiceSection) {
	if s.Type == ServiceOneshot && !d.isSet("service", "timeout-start") && !d.isSet("service", "timeout-sec") {
		s.TimeoutStart = Infinity
	}
	if !d.isSet("service", "timeout-abort") {
		s.TimeoutAbort = s.TimeoutStop
	}
	switch s.StandardInput.Kind {
	case StdIOSocket, StdIOTTY, StdIOTTYForce, StdIOTTYFail:
		// systemd: with a connection or a terminal on standard input,
		// standard output defaults to inherit (and error, inheriting
		// output, follows): the reply goes back where the input came from.
		if !d.isSet("service", "standard-output") {
			s.StandardOutput = StdIO{Kind: StdIOInherit}
		}
	}
	if (s.Type == ServiceNotify || s.Type == ServiceNotifyReload || s.Watchdog > 0) && !d.isSet("service", "notify-access") {
		s.NotifyAccess = NotifyMain
	}
	switch {
	case len(s.ExecStart) == 0 && s.Type != ServiceOneshot:
		d.keyProblem(SeverityError, "service", "exec-start", fmt.Sprintf("is required for type %s (only oneshot services may have none)", s.Type))
	case len(s.ExecStart) > 1 && s.Type != ServiceOneshot:
		d.keyProblem(SeverityError, "service", "exec-start", fmt.Sprintf("has %d commands: only type oneshot may have more than one", len(s.ExecStart)))
	}
	if s.Type == ServiceDBus && s.BusName == "" {
		d.keyProblem(SeverityError, "service", "type", "type dbus needs bus-name")
	}
	if s.RestartSteps > 0 && !d.isSet("service", "restart-max-delay") {
		d.keyProblem(SeverityWarning, "service", "restart-steps", "has no effect without restart-max-delay")
	}
	if s.RestartMaxDelay != Infinity && s.RestartMaxDelay < s.RestartSec {
		d.keyProblem(SeverityError, "service", "restart-max-delay", "is shorter than restart-sec")
	}
	d.checkCommands("service",
		[]string{"exec-start", "exec-start-pre", "exec-start-post", "exec-condition", "exec-reload", "exec-stop", "exec-stop-post"},
		[]*Commands{&s.ExecStart, &s.ExecStartPre, &s.ExecStartPost, &s.ExecCondition, &s.ExecReload, &s.ExecStop, &s.ExecStopPost},
		&s.ExecContext)
}

func (d *unitDecoder) finalizeSocket(s *SocketSection) {
	if len(s.ListenStream)+len(s.ListenDatagram)+len(s.ListenSequentialPacket)+len(s.ListenFIFO)+len(s.ListenNetlink)+len(s.ListenSpecial) == 0 {
		d.keyProblem(SeverityError, "socket", "", "no listen-* key: a socket unit needs something to listen on")
	}
	if s.Accept && s.Service != "" {
		d.keyProblem(SeverityError, "socket", "service", "cannot be set with accept = true (each connection gets an instance of "+d.unit.ID.Prefix+"@.service)")
	}
	if s.Service == "" {
		if s.Accept {
			s.Service = d.unit.ID.Prefix + "@.service"
		} else {
			s.Service = d.triggeredName(TypeService)
		}
	} else if n, err := ParseName(s.Service); err == nil && n.Type != TypeService {
		d.keyProblem(SeverityError, "socket", "service", fmt.Sprintf("%q is not a .service unit", s.Service))
	}
}

// triggeredName gives the name a timer, path or socket activates by default:
// its own name with the given type.
func (d *unitDecoder) triggeredName(t UnitType) string {
	n := d.unit.ID
	n.Type = t
	return n.String()
}

func (d *unitDecoder) defaultTriggered(section string, unit *string) {
	if *unit == "" {
		*unit = d.triggeredName(TypeService)
		return
	}
	if n, err := ParseName(*unit); err == nil && n.Type == d.unit.Type {
		d.keyProblem(SeverityError, section, "unit", fmt.Sprintf("a .%s unit cannot activate another .%s unit", n.Type, n.Type))
	}
}

// finalizeWhere derives where from the unit's name, or checks that they
// agree, as systemd requires for mount and automount units.
func (d *unitDecoder) finalizeWhere(section string, where *string) {
	if d.unit.ID.IsTemplate || d.unit.ID.IsInstance() {
		d.keyProblem(SeverityError, section, "", fmt.Sprintf(".%s units cannot be templates or instances", d.unit.Type))
		return
	}
	fromName, err := UnescapePath(d.unit.ID.Prefix)
	if err != nil {
		d.keyProblem(SeverityError, section, "", fmt.Sprintf("unit name %q is not an escaped path: %v", d.unit.Name, err))
		return
	}
	if *where == "" {
		*where = fromName
		return
	}
	expected, err := EscapePath(*where)
	if err != nil {
		d.keyProblem(SeverityError, section, "where", err.Error())
		return
	}
	if expected != d.unit.ID.Prefix {
		d.keyProblem(SeverityError, section, "where", fmt.Sprintf("%q does not match the unit name: its unit is %s.%s", *where, expected, d.unit.Type))
	}
}

// checkCommands resolves executables written without '/' in the search
// path and warns about missing ones. Missing executables are warnings, not
// errors: the file may be valid on the machine where it runs, and a unit
// whose command is missing fails when started, with that reason.
func (d *unitDecoder) checkCommands(section string, keys []string, lists []*Commands, ec *ExecContext) {
	for i, list := range lists {
		for j := range *list {
			c := &(*list)[j]
			if strings.ContainsAny(c.Path, "$") {
				continue
			}
			if !strings.Contains(c.Path, "/") {
				found := ""
				for _, dir := range d.ctx.execSearchPath() {
					cand := filepath.Join(dir, c.Path)
					if d.isExecutable(filepath.Join(ec.RootDirectory, cand)) {
						found = cand
						break
					}
				}
				if found == "" {
					if !d.ctx.SkipExecCheck {
						msg := fmt.Sprintf("executable %q not found in %s", c.Path, strings.Join(d.ctx.execSearchPath(), ":"))
						if keys[i] != "exec-start" && len(*list) > 1 {
							msg += fmt.Sprintf(" (an array of strings in %s is a list of command lines: write [[\"/path\", \"arg\"]] for one command as words)", keys[i])
						}
						d.keyProblem(SeverityWarning, section, keys[i], msg)
					}
					continue
				}
				c.Path = found
				continue
			}
			if !strings.HasPrefix(c.Path, "/") {
				d.keyProblem(SeverityError, section, keys[i], fmt.Sprintf("executable %q must be an absolute path or a plain name", c.Path))
				continue
			}
			if !d.ctx.SkipExecCheck && !d.isExecutable(filepath.Join(ec.RootDirectory, c.Path)) {
				d.keyProblem(SeverityWarning, section, keys[i], fmt.Sprintf("executable %q is missing or not executable", c.Path))
			}
		}
	}
}

func (d *unitDecoder) isExecutable(p string) bool {
	ok := isExecutable(d.execCache, p)
	// The answer is an input of the decoded unit besides its files: a
	// cached decoding is reused only while every answer stays the same.
	d.execChecks = append(d.execChecks, execCheck{path: p, ok: ok})
	return ok
}

// isExecutable reports whether p is an executable file, remembering the
// answer in cache for the rest of one Load, Scan or Check.
func isExecutable(cache map[string]bool, p string) bool {
	if ok, known := cache[p]; known {
		return ok
	}
	st, err := os.Stat(p)
	ok := err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	cache[p] = ok
	return ok
}
