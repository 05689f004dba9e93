package audit

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vigil/observer"
)

// Record is one line of the audit log: one decision.
type Record struct {
	Time   time.Time `json:"time"`
	PID    int       `json:"pid"`
	Exe    string    `json:"exe,omitempty"`
	UID    string    `json:"uid"`
	Unit   string    `json:"unit,omitempty"`
	Path   string    `json:"path"`
	Access string    `json:"access"`
	// Rule is the deciding rule, "default", or "timeout"/"busy" when the
	// auditor did not decide in time and the timeout-verdict applied.
	Rule string `json:"rule"`
	// Logged lists the log rules that matched on the way.
	Logged string `json:"logged,omitempty"`
	// Verdict is what the policy said; in permissive mode a deny is
	// recorded as deny and the access is allowed.
	Verdict string `json:"verdict"`
	Mode    string `json:"mode"`
	// Via is who answered the kernel: "loop" (the auditor's observer),
	// "inline" (the fanotify reader, for Vigil's own children), "late"
	// (after the decision timeout).
	Via string `json:"via,omitempty"`
}

// recordKeys are the log line's keys, in the order they are written.
var recordKeys = [...]string{"time", "pid", "exe", "uid", "unit", "path", "access", "rule", "logged", "verdict", "mode", "via"}

// FormatRecord renders a record as one logfmt line (no newline): key=value
// pairs, values quoted Go-style when they hold blanks, quotes, '=' or
// control characters, so that any path survives the round trip.
func FormatRecord(r Record) string {
	var b strings.Builder
	vals := [...]string{r.Time.UTC().Format(time.RFC3339Nano), strconv.Itoa(r.PID), r.Exe, r.UID, r.Unit, r.Path, r.Access, r.Rule, r.Logged, r.Verdict, r.Mode, r.Via}
	for i, k := range recordKeys {
		v := vals[i]
		if v == "" && k != "path" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(logfmtValue(v))
	}
	return b.String()
}

func logfmtValue(v string) string {
	if v == "" {
		return `""`
	}
	for _, c := range v {
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f || c >= 0x80 {
			return strconv.QuoteToASCII(v)
		}
	}
	return v
}

// ParseRecord reads a line written by FormatRecord. Unknown keys are
// ignored (a newer Vigil may add some); a malformed line is an error.
func ParseRecord(line string) (Record, error) {
	var r Record
	s := strings.TrimRight(line, "\r\n")
	seen := false
	for s != "" {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return Record{}, fmt.Errorf("audit log line: %q is not key=value", cut(s))
		}
		key := s[:eq]
		if strings.ContainsAny(key, " \"") {
			return Record{}, fmt.Errorf("audit log line: bad key %q", cut(key))
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return Record{}, fmt.Errorf("audit log line: value of %s: %v", key, err)
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
			if s != "" && s[0] != ' ' {
				return Record{}, fmt.Errorf("audit log line: junk after the value of %s", key)
			}
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		seen = true
		switch key {
		case "time":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return Record{}, fmt.Errorf("audit log line: time %q: %v", cut(val), err)
			}
			r.Time = t
		case "pid":
			n, err := strconv.Atoi(val)
			if err != nil {
				return Record{}, fmt.Errorf("audit log line: pid %q is not a number", cut(val))
			}
			r.PID = n
		case "exe":
			r.Exe = val
		case "uid":
			r.UID = val
		case "unit":
			r.Unit = val
		case "path":
			r.Path = val
		case "access":
			r.Access = val
		case "rule":
			r.Rule = val
		case "logged":
			r.Logged = val
		case "verdict":
			r.Verdict = val
		case "mode":
			r.Mode = val
		case "via":
			r.Via = val
		}
	}
	if !seen {
		return Record{}, fmt.Errorf("audit log line: empty")
	}
	return r, nil
}

func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// RecordFilter selects records for `initctl audit`.
type RecordFilter struct {
	Unit    string `json:"unit,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	Rule    string `json:"rule,omitempty"`
}

// Match tells whether the record passes the filter.
func (f RecordFilter) Match(r *Record) bool {
	return (f.Unit == "" || f.Unit == r.Unit) && (f.Verdict == "" || f.Verdict == r.Verdict) && (f.Rule == "" || f.Rule == r.Rule)
}

// logBuffer is how many records may wait for the writer before new ones
// are dropped (and counted).
const logBuffer = 4096

// followBuffer bounds what one follower may lag behind.
const followBuffer = 256

// logWriter appends records to the audit log on its own goroutine, so a
// slow disk never holds the loop or the fanotify reader; a full buffer
// drops records and counts them. It rotates by size: audit.log becomes
// audit.log.1, .1 becomes .2, up to keep files.
type logWriter struct {
	path    string
	maxSize int64
	keep    int
	logf    func(string, ...any)

	ch      chan Record
	done    chan struct{}
	closing sync.Once

	written, dropped, rotations atomic.Uint64
	// keeper runs the writer again after a panic; beforeBatch, when set,
	// runs before each batch (tests make it panic).
	keeper      *observer.Keeper
	beforeBatch atomic.Pointer[func()]

	mu        sync.Mutex
	followers map[*follower]struct{}
}

type follower struct {
	ch      chan Record
	filter  RecordFilter
	dropped atomic.Uint64
}

func startLogWriter(path string, maxSize int64, keep int, logf func(string, ...any)) *logWriter {
	w := &logWriter{path: path, maxSize: maxSize, keep: keep, logf: logf,
		ch: make(chan Record, logBuffer), done: make(chan struct{}), followers: map[*follower]struct{}{}}
	// Kept: a panic (in formatting one odd record, say) costs that batch,
	// counted as dropped, never the log. done closes when the writer is
	// gone for good: after Close drained the queue.
	w.keeper = observer.Keep("audit log writer", observer.KeepOptions{Logf: w.logf}, func() error { w.run(); return nil })
	go func() { <-w.keeper.Done(); close(w.done) }()
	return w
}

// Write queues a record; it never blocks and reports false on a drop.
func (w *logWriter) Write(r Record) bool {
	select {
	case w.ch <- r:
		return true
	default:
		w.dropped.Add(1)
		return false
	}
}

// Close writes what is queued and stops the writer.
func (w *logWriter) Close() {
	w.closing.Do(func() { close(w.ch) })
	<-w.done
}

// Follow gets every record written from now on that passes filter, until
// stop is called. A follower that lags loses records, counted in its own
// drop counter, and never slows the writer.
func (w *logWriter) Follow(filter RecordFilter) (<-chan Record, func()) {
	f := &follower{ch: make(chan Record, followBuffer), filter: filter}
	w.mu.Lock()
	w.followers[f] = struct{}{}
	w.mu.Unlock()
	var once sync.Once
	return f.ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.followers, f)
			w.mu.Unlock()
		})
	}
}

func (w *logWriter) run() {
	var f *os.File
	var size int64
	open := func() {
		if err := os.MkdirAll(filepath.Dir(w.path), 0o750); err != nil {
			w.logf("audit log: %v", err)
		}
		var err error
		f, err = os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			w.logf("audit log: %v (records are dropped until it can be opened)", err)
			f = nil
			return
		}
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
	}
	open()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var buf []byte
	var batch []Record
	defer func() {
		if p := recover(); p != nil {
			w.dropped.Add(uint64(len(batch)))
			panic(p) // for the keeper, which logs it and runs the writer again
		}
	}()
	for r := range w.ch {
		batch = []Record{r}
	more:
		for len(batch) < 256 {
			select {
			case r, ok := <-w.ch:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if hook := w.beforeBatch.Load(); hook != nil {
			(*hook)()
		}
		if f == nil {
			open()
		}
		buf = buf[:0]
		for i := range batch {
			line := FormatRecord(batch[i]) + "\n"
			if pending := size + int64(len(buf)); f != nil && pending > 0 && pending+int64(len(line)) > w.maxSize {
				if len(buf) > 0 {
					n, _ := f.Write(buf)
					size += int64(n)
					buf = buf[:0]
				}
				f.Close()
				f = nil
				w.rotate()
				open()
				size = 0
			}
			buf = append(buf, line...)
		}
		if f != nil {
			n, err := f.Write(buf)
			size += int64(n)
			if err != nil {
				w.logf("audit log %s: %v", w.path, err)
				w.dropped.Add(uint64(len(batch)))
			} else {
				w.written.Add(uint64(len(batch)))
			}
		} else {
			w.dropped.Add(uint64(len(batch)))
		}
		w.fanOut(batch)
	}
}

func (w *logWriter) fanOut(batch []Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for fl := range w.followers {
		for i := range batch {
			if !fl.filter.Match(&batch[i]) {
				continue
			}
			select {
			case fl.ch <- batch[i]:
			default:
				fl.dropped.Add(1)
			}
		}
	}
}

// rotate shifts audit.log.N-1 to .N ... and audit.log to .1; with keep 0
// the full log is removed.
func (w *logWriter) rotate() {
	w.rotations.Add(1)
	if w.keep == 0 {
		if err := os.Remove(w.path); err != nil {
			w.logf("audit log rotation: %v", err)
		}
		return
	}
	os.Remove(rotated(w.path, w.keep))
	for i := w.keep - 1; i >= 1; i-- {
		if err := os.Rename(rotated(w.path, i), rotated(w.path, i+1)); err != nil && !os.IsNotExist(err) {
			w.logf("audit log rotation: %v", err)
		}
	}
	if err := os.Rename(w.path, rotated(w.path, 1)); err != nil {
		w.logf("audit log rotation: %v", err)
	}
}

func rotated(path string, i int) string { return path + "." + strconv.Itoa(i) }

// ReadRecords reads the last n records passing filter from the log and its
// rotated files (oldest first); n <= 0 means all. Lines that do not parse
// are skipped and counted in bad.
func ReadRecords(path string, keep, n int, filter RecordFilter) (out []Record, bad int, err error) {
	files := []string{}
	for i := keep; i >= 1; i-- {
		files = append(files, rotated(path, i))
	}
	files = append(files, path)
	found := false
	for _, name := range files {
		f, ferr := os.Open(name)
		if ferr != nil {
			if !os.IsNotExist(ferr) {
				err = ferr
			}
			continue
		}
		found = true
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			r, perr := ParseRecord(sc.Text())
			if perr != nil {
				bad++
				continue
			}
			if !filter.Match(&r) {
				continue
			}
			out = append(out, r)
			if n > 0 && len(out) > 2*n {
				out = append(out[:0], out[len(out)-n:]...)
			}
		}
		f.Close()
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	if !found && err == nil {
		err = fmt.Errorf("audit log %s: %w", path, os.ErrNotExist)
	}
	return out, bad, err
}
