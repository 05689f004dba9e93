package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/control"
	"vigil/units/api"
)

// testManager answers control calls on a real observer loop behind a real
// control socket, with canned units, so that initctl's client side runs
// end to end. Its state is touched only on the loop goroutine, except
// where guarded by mu for the test to inspect.
type testManager struct {
	t      *testing.T
	loop   *observer.Loop
	srv    *control.Server
	socket string
	units  map[string]*api.UnitStatus

	mu       sync.Mutex
	calls    []string       // method names, in order
	args     map[string]any // last decoded args per method
	streams  chan string    // "observe done" / "logs done" when a stream's client left
	jobDelay map[string]time.Duration
	// jobGates holds a unit's jobs running until the channel is closed
	// (see holdJobs); read and written on the loop only.
	jobGates map[string]chan struct{}
}

func newTestManager(t *testing.T) *testManager {
	t.Helper()
	m := &testManager{
		t:        t,
		loop:     observer.New(observer.Options{Logf: t.Logf}),
		socket:   filepath.Join(t.TempDir(), "control.sock"),
		args:     map[string]any{},
		streams:  make(chan string, 10),
		jobDelay: map[string]time.Duration{"slow.service": 700 * time.Millisecond},
	}
	started := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tasks, mem := uint64(2), uint64(1572864)
	m.units = map[string]*api.UnitStatus{
		"web.service": {
			UnitSummary: api.UnitSummary{Name: "web.service", Type: "service", Load: "loaded", Active: "active", Sub: "running", Description: "Web server", MainPID: 4242},
			Fragment:    "/etc/vigil/units/web.service", UnitFileState: "enabled", ActiveEnter: started,
			DropIns:       []string{"/etc/vigil/units/web.service.d/10-limits.toml", "/etc/vigil/units/web.service.d/20-env.toml"},
			ControlGroup:  "/vigil.slice/web.service",
			Processes:     []api.Process{{PID: 4242, Command: "/usr/bin/httpd -f", Main: true}, {PID: 4250, Command: "httpd-worker"}},
			TasksCurrent:  &tasks,
			MemoryCurrent: &mem,
			Logs:          []api.LogLine{{Time: started, Unit: "web.service", Stream: "stdout", PID: 4242, Text: "listening on :80"}},
		},
		"db.service": {
			UnitSummary: api.UnitSummary{Name: "db.service", Type: "service", Load: "loaded", Active: "failed", Sub: "failed", Description: "Database", MainPID: 77},
			Fragment:    "/etc/vigil/units/db.service", UnitFileState: "disabled", Result: "exit-code", ExitStatus: "status=1",
			InactiveEnter: started.Add(time.Minute),
		},
		"idle.target": {
			UnitSummary: api.UnitSummary{Name: "idle.target", Type: "target", Load: "loaded", Active: "inactive", Sub: "dead", Description: "Idle"},
		},
		"good.service": {UnitSummary: api.UnitSummary{Name: "good.service", Type: "service", Load: "loaded", Active: "inactive", Sub: "dead", Description: "Good"}},
		"bad.service":  {UnitSummary: api.UnitSummary{Name: "bad.service", Type: "service", Load: "loaded", Active: "inactive", Sub: "dead", Description: "Bad"}},
		"slow.service": {UnitSummary: api.UnitSummary{Name: "slow.service", Type: "service", Load: "loaded", Active: "inactive", Sub: "dead", Description: "Slow"}},
	}
	f, err := observer.ParseFilter("source=control")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.loop.Register(observer.Observer{Guest: "test", Name: "manager", Filter: f, Notify: func(ev *observer.Event) {
		m.handle(ev.Payload.(*control.Request))
	}}); err != nil {
		t.Fatal(err)
	}
	m.srv, err = control.Listen(m.loop, m.socket, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.loop.Run(ctx)
	t.Cleanup(func() { m.srv.Close(); cancel() })
	return m
}

func (m *testManager) record(method string, args any) {
	m.mu.Lock()
	m.calls = append(m.calls, method)
	m.args[method] = args
	m.mu.Unlock()
}

func (m *testManager) lastArgs(method string) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.args[method]
}

func decode[T any](r *control.Request) (T, bool) {
	var v T
	if err := r.Decode(&v); err != nil {
		r.Fail(api.ErrInvalidArgs, "%v", err)
		return v, false
	}
	return v, true
}

func (m *testManager) unit(r *control.Request, name string) *api.UnitStatus {
	u, ok := m.units[name]
	if !ok {
		r.Fail(api.ErrNotFound, "Unit %s not found.", name)
	}
	return u
}

func (m *testManager) handle(r *control.Request) {
	switch r.Method {
	case api.MethodPing:
		m.record(r.Method, nil)
		r.Reply(api.Version{Version: "test", PID: 1, PID1: true})
	case api.MethodList:
		a, ok := decode[api.ListArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		var out []api.UnitSummary
		for _, name := range sortedKeys(m.units) {
			u := m.units[name]
			if !a.All && u.Active == "inactive" {
				continue
			}
			if len(a.Types) > 0 && !contains(a.Types, u.Type) {
				continue
			}
			if len(a.States) > 0 && !contains(a.States, u.Active) && !contains(a.States, u.Sub) {
				continue
			}
			out = append(out, u.UnitSummary)
		}
		r.Reply(out)
	case api.MethodStatus:
		a, ok := decode[api.UnitArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		if u := m.unit(r, a.Unit); u != nil {
			r.Reply(u)
		}
	case api.MethodShow:
		a, ok := decode[api.ShowArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		if a.Unit == "" {
			r.Reply([]api.Property{{Name: "Version", Value: "test"}, {Name: "Virtualization", Value: ""}})
			return
		}
		u := m.unit(r, a.Unit)
		if u == nil {
			return
		}
		all := []api.Property{{Name: "Id", Value: u.Name}, {Name: "ActiveState", Value: u.Active}, {Name: "SubState", Value: u.Sub}, {Name: "StatusText", Value: u.StatusText}}
		var out []api.Property
		for _, p := range all {
			if len(a.Properties) == 0 || contains(a.Properties, p.Name) {
				out = append(out, p)
			}
		}
		r.Reply(out)
	case api.MethodCat:
		a, ok := decode[api.UnitArgs](r)
		if !ok {
			return
		}
		if u := m.unit(r, a.Unit); u != nil {
			r.Reply(api.CatResult{Files: []api.CatFile{{Path: "/etc/vigil/units/" + a.Unit, Content: "[unit]\ndescription = \"" + u.Description + "\"\n"}, {Path: "/etc/vigil/units/" + a.Unit + ".d/override.toml", Content: "[service]\nnice = 5"}}})
		}
	case api.MethodIsActive, api.MethodIsFailed, api.MethodIsEnabled:
		a, ok := decode[api.UnitsArgs](r)
		if !ok {
			return
		}
		var out []string
		for _, name := range a.Units {
			u, ok := m.units[name]
			switch {
			case !ok && r.Method == api.MethodIsEnabled:
				r.Fail(api.ErrNotFound, "Unit %s not found.", name)
				return
			case !ok:
				out = append(out, "inactive")
			case r.Method == api.MethodIsEnabled:
				state := u.UnitFileState
				if state == "" {
					state = "static"
				}
				out = append(out, state)
			default:
				out = append(out, u.Active)
			}
		}
		r.Reply(out)
	case api.MethodEnable, api.MethodDisable:
		a, ok := decode[api.UnitsArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		var ch api.Changes
		for _, u := range a.Units {
			link := "/etc/vigil/units/multi-user.target.wants/" + u
			if r.Method == api.MethodEnable {
				ch.Changes = append(ch.Changes, api.Change{Type: "symlink", Path: link, Destination: "/etc/vigil/units/" + u})
			} else {
				ch.Changes = append(ch.Changes, api.Change{Type: "unlink", Path: link})
			}
		}
		r.Reply(ch)
	case api.MethodJob:
		a, ok := decode[api.JobArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		m.runJobs(r, a)
	case api.MethodKill:
		a, ok := decode[api.KillArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		if m.unit(r, a.Unit) != nil {
			r.Reply(nil)
		}
	case api.MethodCancel:
		a, ok := decode[api.CancelArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		if len(a.IDs) == 1 && a.IDs[0] == 404 {
			r.Fail(api.ErrGeneric, "job 404 does not exist")
			return
		}
		r.Reply(api.CancelResult{Canceled: max(len(a.IDs), 2)})
	case api.MethodListJobs:
		r.Reply([]api.JobInfo{{ID: 7, Unit: "slow.service", Type: "start", State: "running"}, {ID: 8, Unit: "web.service", Type: "restart", State: "waiting"}})
	case api.MethodLogs:
		a, ok := decode[api.LogsArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		lines := []api.LogLine{
			{Time: base, Unit: "web.service", Stream: "stdout", PID: 4242, Text: "one"},
			{Time: base.Add(time.Second), Unit: "web.service", Stream: "stderr", PID: 4242, Text: "two"},
		}
		if !a.Follow {
			r.Reply(lines)
			return
		}
		for _, l := range lines {
			r.Progress(l)
		}
		n := 0
		var more func()
		more = func() {
			if r.Closed() {
				m.streams <- "logs done"
				r.Reply(nil)
				return
			}
			n++
			r.Progress(api.LogLine{Time: base.Add(time.Duration(n+1) * time.Second), Unit: "web.service", Stream: "stdout", Text: fmt.Sprintf("more %d", n)})
			m.loop.AfterFunc(10*time.Millisecond, more)
		}
		more()
	case api.MethodEmit:
		a, ok := decode[api.EmitArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		r.Reply(nil)
	case api.MethodObserve:
		a, ok := decode[api.ObserveArgs](r)
		if !ok {
			return
		}
		m.record(r.Method, a)
		seq := uint64(0)
		var next func()
		next = func() {
			if r.Closed() {
				m.streams <- "observe done"
				return
			}
			seq++
			r.Progress(api.ObservedEvent{Seq: seq, Source: "uevent", Kind: "add", Mono: 12*time.Second + 345678*time.Microsecond, Attrs: map[string]string{"SUBSYSTEM": "block", "DEVNAME": fmt.Sprintf("vd%c", 'a'+seq%26)}})
			if a.Filter == "stop-after=3" && seq == 3 {
				r.Reply(nil)
				return
			}
			m.loop.AfterFunc(10*time.Millisecond, next)
		}
		next()
	case api.MethodObservers:
		r.Reply(api.ObserversResult{
			Observers: []api.ObserverRow{{ID: 1, Guest: "units", Name: "control", Filter: "source=control", Matched: 12}, {ID: 2, Guest: "cli", Name: "observe", Filter: "", Matched: 3, Dropped: 1}, {ID: 3, Guest: "guard", Name: "watch", Filter: "source=fanotify", Matched: 5, Decides: true, Overruled: 2}},
			Sources:   []api.SourceRow{{Name: "control", Posted: 12}, {Name: "uevent", Posted: 40, Dropped: 2}},
		})
	case api.MethodDaemonReload:
		r.Reply(api.ReloadResult{Changed: []string{"web.service"}, Problems: []string{"/etc/vigil/units/x.service:3:1: unknown key 'restart-secs' (did you mean 'restart-sec'?)"}})
	case api.MethodResetFailed:
		a, _ := decode[api.UnitsArgs](r)
		m.record(r.Method, a)
		r.Reply(nil)
	case api.MethodShutdown:
		a, _ := decode[api.ShutdownArgs](r)
		m.record(r.Method, a)
		r.Reply(nil)
	default:
		r.Fail(api.ErrInvalidArgs, "unknown method %q", r.Method)
	}
}

// runJobs plays a job's life as the real manager reports it: waiting,
// running, done, as progress frames over loop turns.
func (m *testManager) runJobs(r *control.Request, a api.JobArgs) {
	var out api.JobOutcome
	for i, name := range a.Units {
		if m.unit(r, name) == nil {
			return
		}
		out.Jobs = append(out.Jobs, api.JobInfo{ID: uint64(100 + i), Unit: name, Type: a.Type, State: "waiting"})
	}
	if a.NoBlock {
		r.Reply(out)
		return
	}
	pending := len(out.Jobs)
	for i := range out.Jobs {
		j := &out.Jobs[i]
		r.Progress(api.JobEvent{JobID: j.ID, Unit: j.Unit, Type: j.Type, State: "running", Message: "Starting " + m.units[j.Unit].Description + "..."})
		finish := func() {
			j.State = "done"
			switch j.Unit {
			case "bad.service":
				j.Result, j.Reason = api.ResultFailed, "the control process exited with error code"
			case "db.service":
				j.Result = api.ResultDependency
			default:
				j.Result = api.ResultDone
			}
			r.Progress(api.JobEvent{JobID: j.ID, Unit: j.Unit, Type: j.Type, State: "done", Result: j.Result})
			if pending--; pending == 0 {
				r.Reply(out)
			}
		}
		if gate := m.jobGates[j.Unit]; gate != nil {
			go func() { <-gate; m.loop.Do(finish) }()
			continue
		}
		m.loop.AfterFunc(m.jobDelay[j.Unit]+5*time.Millisecond, finish)
	}
}

// holdJobs makes unit's jobs run until release is called, rather than for
// their jobDelay: a test that must see a job running (a spinner line) does
// not depend on how fast a loaded machine gets there.
func (m *testManager) holdJobs(unit string) (release func()) {
	m.t.Helper()
	gate := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.loop.Call(ctx, func() {
		if m.jobGates == nil {
			m.jobGates = map[string]chan struct{}{}
		}
		m.jobGates[unit] = gate
	}); err != nil {
		m.t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	m.t.Cleanup(release)
	return release
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// runCLI runs initctl against the manager and returns its output.
func (m *testManager) runCLI(args ...string) (stdout, stderr string, code int) {
	return m.runCLICtx(context.Background(), args...)
}

func (m *testManager) runCLICtx(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"initctl", "--socket", m.socket}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, got)
		}
	}
}
