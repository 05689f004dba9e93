package pid1

import (
	"errors"
	"io/fs"
	"path/filepath"

	"vigil/observer"
	"vigil/observer/audit"
	"vigil/observer/fanotify"
	"vigil/units"
)

// newAuditor loads the audit policy (Config.AuditConfig; none when empty).
// It never fails the boot: a broken policy is logged and audits nothing
// until a reload fixes it. It runs before the fanotify source is opened,
// because the source takes the auditor's inline decider (auditInline).
func newAuditor(loop *observer.Loop, cfg Config, logf func(string, ...any)) *audit.Auditor {
	path := cfg.AuditConfig
	if path == "" {
		// No policy file: an auditor that decides nothing but still answers
		// `initctl audit status`.
		path = filepath.Join(cfg.RuntimeDir, "audit-disabled.toml")
	}
	a, err := audit.New(audit.Options{Loop: loop, ConfigPath: path, Logf: logf})
	if err != nil {
		logf("audit: %v (auditing nothing until `initctl audit reload` succeeds)", err)
	}
	return a
}

// auditInline is the fanotify source's Options.Inline: the auditor's rules
// over its current immutable snapshot, for accesses by Vigil's own children
// before their exec (the loop may be waiting for that exec, so they cannot
// go through it).
func auditInline(a *audit.Auditor) func(*observer.Event) observer.Verdict {
	if a == nil {
		return nil
	}
	return a.Inline
}

// auditInlineLater is the fanotify source's Options.InlineLater: the same
// decision as auditInline, with digests computed off the fanotify reader
// (it takes Inline's place when set).
func auditInlineLater(a *audit.Auditor) func(*observer.Event, func(observer.Verdict)) (observer.Verdict, bool) {
	if a == nil {
		return nil
	}
	return a.InlineLater
}

// startAudit places the auditor's marks and registers its observers; on
// the loop goroutine. files is nil when fanotify is unavailable (filesErr
// says why): the policy is then shown but not enforced.
func (vm *Manager) startAudit(files *fanotify.Source, filesErr error) {
	if vm.audit == nil {
		return
	}
	var marker audit.Marker
	why := ""
	if files != nil {
		marker = audit.FanotifyMarker{Source: files}
	} else if filesErr != nil {
		why = filesErr.Error()
	}
	if err := vm.audit.Start(marker, why); err != nil {
		vm.units.LogAt(units.LevelWarning, "audit: %v", err)
		return
	}
	if vm.cfg.AuditConfig == "" {
		return
	}
	// Editing audit.toml reloads it. Without its directory, only
	// `initctl audit reload` (or daemon-reload) does.
	if err := vm.audit.WatchConfig(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		vm.units.LogAt(units.LevelWarning, "audit: cannot watch %s: %v (reload with initctl audit reload)", vm.cfg.AuditConfig, err)
	}
}

// stopAudit removes the auditor's marks and flushes its log, after the
// loop stopped and before the fanotify source closes.
func (vm *Manager) stopAudit() {
	if vm.audit != nil {
		vm.audit.Stop()
	}
}

// pid1AuditConfig is PID 1's audit policy.
const pid1AuditConfig = audit.DefaultConfigPath
