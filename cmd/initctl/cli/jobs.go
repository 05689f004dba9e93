package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
)

func validJobMode(m string) bool {
	switch m {
	case "", api.ModeReplace, api.ModeFail, api.ModeIsolate, api.ModeIgnoreDependencies,
		api.ModeIgnoreRequirements, api.ModeReplaceIrreversibly:
		return true
	}
	return false
}

// runJob asks for jobs on the named units and, unless --no-block, waits
// for them, showing their progress; it fails when any job did not succeed.
func (e *env) runJob(p *parsed, verb, jobType string) int {
	mode := p.str("job-mode", "")
	if verb == "isolate" {
		mode = api.ModeIsolate
	}
	if !validJobMode(mode) {
		fmt.Fprintf(e.stderr, "%s %s: unknown job mode %q\n", e.program, verb, mode)
		return exitUsage
	}
	args := api.JobArgs{Type: jobType, Units: p.args, Mode: mode, NoBlock: p.has("no-block")}
	progress := newJobProgress(e)
	var out api.JobOutcome
	err := e.call(api.MethodJob, args, &out, progress.frame)
	progress.stop()
	if err != nil {
		return e.failNotFound(verb+" "+strings.Join(p.args, " "), err, exitNotInstalled)
	}
	if e.json {
		e.printJSON(out)
	}
	status := exitOK
	for _, j := range out.Jobs {
		if msg := jobFailure(e.program, j); msg != "" {
			fmt.Fprintln(e.stderr, msg)
			status = exitJobFailed
		}
	}
	return status
}

// jobFailure is what systemctl says when a job did not succeed; "" when it
// did (or has not ended: --no-block).
func jobFailure(program string, j api.JobInfo) string {
	see := fmt.Sprintf("See '%s status %s' and '%s logs %s' for details.", program, j.Unit, program, j.Unit)
	switch j.Result {
	case "", api.ResultDone, api.ResultSkipped:
		return ""
	case api.ResultFailed:
		if j.Reason != "" {
			return fmt.Sprintf("Job for %s failed because %s.\n%s", j.Unit, strings.TrimSuffix(j.Reason, "."), see)
		}
		return fmt.Sprintf("Job for %s failed.\n%s", j.Unit, see)
	case api.ResultTimeout:
		return fmt.Sprintf("Job for %s failed because a timeout was exceeded.\n%s", j.Unit, see)
	case api.ResultDependency:
		return fmt.Sprintf("A dependency job for %s failed. See '%s logs' for details.", j.Unit, program)
	case api.ResultCanceled:
		return fmt.Sprintf("Job for %s canceled.", j.Unit)
	case api.ResultAssert:
		return fmt.Sprintf("Assertion failed on job for %s.", j.Unit)
	case api.ResultUnsupport:
		return fmt.Sprintf("Operation on or unit type of %s not supported on this system.", j.Unit)
	case api.ResultInvalid:
		return fmt.Sprintf("Job for %s is invalid.", j.Unit)
	}
	msg := fmt.Sprintf("Job for %s ended with result %s", j.Unit, j.Result)
	if j.Reason != "" {
		msg += ": " + j.Reason
	}
	return msg + ".\n" + see
}

// spinnerDelay is how long a job runs before the spinner line appears, so
// that quick jobs do not flicker.
const spinnerDelay = 250 * time.Millisecond

// jobProgress shows JobEvent progress frames: on a terminal one spinner
// line, rewritten in place ("A start job is running for Foo (3s)"); on
// anything else one plain line per event.
type jobProgress struct {
	e       *env
	spinner bool

	mu      sync.Mutex
	running map[uint64]*runningJob
	order   []uint64
	shown   bool
	tick    int
	quit    chan struct{}
	stopped bool
	wg      sync.WaitGroup
}

type runningJob struct {
	event api.JobEvent
	since time.Time
}

func newJobProgress(e *env) *jobProgress {
	jp := &jobProgress{e: e, running: map[uint64]*runningJob{}, quit: make(chan struct{})}
	jp.spinner = e.errTTY && !e.quiet && !e.json
	if jp.spinner {
		jp.wg.Add(1)
		go jp.animate()
	}
	return jp
}

func (jp *jobProgress) frame(raw json.RawMessage) {
	var ev api.JobEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return // not a job event: nothing to show
	}
	if jp.e.quiet || jp.e.json {
		return
	}
	if !jp.spinner {
		fmt.Fprintln(jp.e.stderr, plainJobLine(ev))
		return
	}
	jp.mu.Lock()
	defer jp.mu.Unlock()
	if ev.State == "done" {
		delete(jp.running, ev.JobID)
	} else if r, ok := jp.running[ev.JobID]; ok {
		r.event = ev
	} else {
		jp.running[ev.JobID] = &runningJob{event: ev, since: jp.e.now()}
		jp.order = append(jp.order, ev.JobID)
	}
	jp.redraw()
}

// plainJobLine is the line for one event off a terminal.
func plainJobLine(ev api.JobEvent) string {
	if ev.Message != "" {
		return ev.Message
	}
	line := fmt.Sprintf("%s: %s job %d %s", ev.Unit, ev.Type, ev.JobID, ev.State)
	if ev.Result != "" {
		line += " (" + ev.Result + ")"
	}
	return line
}

func (jp *jobProgress) animate() {
	defer jp.wg.Done()
	t := time.NewTicker(spinnerDelay / 2)
	defer t.Stop()
	for {
		select {
		case <-jp.quit:
			return
		case <-t.C:
			jp.mu.Lock()
			jp.tick++
			jp.redraw()
			jp.mu.Unlock()
		}
	}
}

// spinnerLine is the text of the spinner line for the oldest running job,
// or "" when nothing has run long enough to show.
func spinnerLine(tick int, now time.Time, r *runningJob) string {
	elapsed := now.Sub(r.since)
	if elapsed < spinnerDelay {
		return ""
	}
	frames := []string{"[*     ]", "[**    ]", "[***   ]", "[ ***  ]", "[  *** ]", "[   ***]", "[    **]", "[     *]", "[    **]", "[   ***]", "[  *** ]", "[ ***  ]", "[***   ]", "[**    ]"}
	msg := r.event.Message
	if !strings.Contains(msg, "job is running") {
		span := "0s"
		if secs := elapsed.Truncate(time.Second); secs > 0 {
			span = formatSpan(secs)
		}
		msg = fmt.Sprintf("A %s job is running for %s (%s)", r.event.Type, r.event.Unit, span)
	}
	return frames[tick%len(frames)] + " " + msg
}

func (jp *jobProgress) redraw() {
	if jp.stopped {
		return
	}
	var line string
	for _, id := range jp.order {
		if r, ok := jp.running[id]; ok {
			line = spinnerLine(jp.tick, jp.e.now(), r)
			break
		}
	}
	if line == "" {
		if jp.shown {
			fmt.Fprint(jp.e.stderr, "\r\x1b[K")
			jp.shown = false
		}
		return
	}
	fmt.Fprint(jp.e.stderr, "\r\x1b[K"+line)
	jp.shown = true
}

// stop ends the animation and clears the spinner line.
func (jp *jobProgress) stop() {
	jp.mu.Lock()
	if jp.stopped {
		jp.mu.Unlock()
		return
	}
	jp.stopped = true
	if jp.shown {
		fmt.Fprint(jp.e.stderr, "\r\x1b[K")
		jp.shown = false
	}
	jp.mu.Unlock()
	close(jp.quit)
	jp.wg.Wait()
}

// parseSignal accepts TERM, SIGTERM, sigterm or 15 and returns "SIGTERM".
func parseSignal(s string) (string, error) {
	if n, err := strconv.Atoi(s); err == nil {
		name := unix.SignalName(syscall.Signal(n))
		if name == "" {
			return "", fmt.Errorf("unknown signal number %d", n)
		}
		return name, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if unix.SignalNum(name) == 0 {
		return "", fmt.Errorf("unknown signal %q", s)
	}
	return name, nil
}
