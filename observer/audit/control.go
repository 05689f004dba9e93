package audit

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Control methods the auditor answers on the manager's control socket.
// None is read-only: the audit log and the policy are root's business, and
// the control server refuses other peers before the auditor sees the call.
const (
	MethodStatus = "audit.status" // none -> Status
	MethodReload = "audit.reload" // none -> Status; error: the file:line of the broken policy
	MethodLog    = "audit.log"    // LogArgs -> []Record; progress (follow): Record
	// methodDaemonReload is the supervisor's daemon-reload: the auditor
	// re-reads its policy then too (it only listens; the supervisor
	// answers the call).
	methodDaemonReload = "daemon-reload"
)

// LogArgs select audit log records.
type LogArgs struct {
	Lines  int          `json:"lines,omitempty"`
	Follow bool         `json:"follow,omitempty"`
	Filter RecordFilter `json:"filter"`
}

// Request is what the auditor needs of a control request (the Payload of
// a "control" event); *control.Request implements it.
type Request interface {
	Decode(v any) error
	Reply(v any)
	Fail(code int, format string, args ...any)
	Progress(v any) bool
	Done() <-chan struct{}
}

// Error codes sent with failed calls (those of the control protocol).
const (
	errFailed      = 1
	errInvalidArgs = 2
)

// defaultLogLines is what `initctl audit` shows without -n.
const defaultLogLines = 50

func (a *Auditor) registerControl() error {
	if len(a.controlObs) > 0 {
		return nil
	}
	loop := a.opts.Loop
	id, err := loop.Register(observer.Observer{
		Guest: GuestName, Name: "audit requests",
		Filter: observer.Filter{Terms: []observer.Term{
			{Key: "source", Op: observer.OpEq, Values: []string{"control"}},
			{Key: "kind", Op: observer.OpEq, Values: []string{MethodStatus, MethodReload, MethodLog}}}},
		Notify: a.onControl,
	})
	if err != nil {
		return err
	}
	a.controlObs = append(a.controlObs, id)
	id, err = loop.Register(observer.Observer{
		Guest: GuestName, Name: "reload with daemon-reload",
		Filter: observer.Filter{Terms: []observer.Term{
			{Key: "source", Op: observer.OpEq, Values: []string{"control"}},
			{Key: "kind", Op: observer.OpEq, Values: []string{methodDaemonReload}}}},
		Notify: func(*observer.Event) { a.Reload() },
	})
	if err != nil {
		return err
	}
	a.controlObs = append(a.controlObs, id)
	return nil
}

func (a *Auditor) onControl(ev *observer.Event) {
	req, ok := ev.Payload.(Request)
	if !ok {
		return
	}
	a.HandleRequest(ev.Kind, req)
}

// HandleRequest answers one audit control call on the loop goroutine.
// Reading the log happens on a goroutine of its own.
func (a *Auditor) HandleRequest(method string, req Request) {
	switch method {
	case MethodStatus:
		req.Reply(a.Status())
	case MethodReload:
		if err := a.Reload(); err != nil {
			req.Fail(errFailed, "%v", err)
			return
		}
		req.Reply(a.Status())
	case MethodLog:
		var args LogArgs
		if err := req.Decode(&args); err != nil {
			req.Fail(errInvalidArgs, "%v", err)
			return
		}
		p := a.policy.Load()
		if p == nil {
			req.Fail(errFailed, "no audit policy is loaded (%s)", a.opts.ConfigPath)
			return
		}
		n := args.Lines
		if n == 0 {
			n = defaultLogLines
		}
		var follow <-chan Record
		var stop func()
		if args.Follow {
			a.logMu.Lock()
			if a.log != nil {
				follow, stop = a.log.Follow(args.Filter)
			}
			a.logMu.Unlock()
		}
		go serveLog(req, p.Log, p.LogKeep, n, args.Filter, follow, stop)
	default:
		req.Fail(errInvalidArgs, "unknown method %q", method)
	}
}

// serveLog answers an audit.log call: the backlog, then (following) new
// records as progress frames until the client goes away.
func serveLog(req Request, path string, keep, n int, filter RecordFilter, follow <-chan Record, stop func()) {
	recs, _, err := ReadRecords(path, keep, n, filter)
	if errors.Is(err, os.ErrNotExist) {
		err = nil // nothing logged yet
	}
	if err != nil && len(recs) == 0 && follow == nil {
		req.Fail(errFailed, "%v", err)
		return
	}
	if follow == nil {
		if recs == nil {
			recs = []Record{}
		}
		req.Reply(recs)
		return
	}
	defer stop()
	for _, r := range recs {
		req.Progress(r)
	}
	for {
		select {
		case <-req.Done():
			return
		case r := <-follow:
			req.Progress(r)
		}
	}
}

// configWatcher re-reads the policy when its file is written or replaced,
// through inotify on the file's directory (editors replace files by
// renaming, which a watch on the file itself would miss).
type configWatcher struct {
	file *os.File
	done chan struct{}
}

// settleDelay lets an editor finish its writes before the file is read.
const settleDelay = 200 * time.Millisecond

// WatchConfig starts reloading the policy on changes of its file. The
// directory must exist. Call it on the loop goroutine.
func (a *Auditor) WatchConfig() error {
	if a.watcher != nil {
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(a.opts.ConfigPath)
	if _, err := unix.InotifyAddWatch(fd, filepath.Clean(dir), unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "inotify watch", Path: dir, Err: err}
	}
	w := &configWatcher{file: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	a.watcher = w
	go w.run(base, func() { a.opts.Loop.Do(func() { a.Reload() }) })
	return nil
}

func (w *configWatcher) close() {
	w.file.Close()
	<-w.done
}

func (w *configWatcher) run(base string, reload func()) {
	defer close(w.done)
	buf := make([]byte, 4096)
	changed := make(chan struct{}, 1)
	go func() {
		// Coalesce bursts of writes into one reload.
		for range changed {
			time.Sleep(settleDelay)
			select {
			case <-changed:
			default:
			}
			reload()
		}
	}()
	defer close(changed)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			end := off + unix.SizeofInotifyEvent + nameLen
			if end > n {
				break
			}
			name := string(trimNUL(buf[off+unix.SizeofInotifyEvent : end]))
			off = end
			if name != base || mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				continue
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
