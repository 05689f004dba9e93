package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"vigil/observer/control"
	"vigil/units/api"
)

// scriptedManager answers every call on a control socket with the same
// scripted frames: an optional progress frame and then either a result or,
// when the result is not JSON, the raw bytes as a (malformed) frame.
type scriptedManager struct {
	socket string
	ln     net.Listener

	mu       sync.Mutex
	progress []byte
	result   []byte
}

func newScriptedManager(tb testing.TB) *scriptedManager {
	m := &scriptedManager{socket: filepath.Join(tb.TempDir(), "control.sock")}
	ln, err := net.Listen("unix", m.socket)
	if err != nil {
		tb.Fatal(err)
	}
	m.ln = ln
	go m.serve()
	tb.Cleanup(func() { ln.Close() })
	return m
}

func (m *scriptedManager) script(progress, result []byte) {
	m.mu.Lock()
	m.progress, m.result = progress, result
	m.mu.Unlock()
}

func (m *scriptedManager) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		go m.answer(c)
	}
}

func (m *scriptedManager) answer(c net.Conn) {
	defer c.Close()
	m.mu.Lock()
	progress, result := m.progress, m.result
	m.mu.Unlock()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		call, err := control.DecodeCall(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return
		}
		var out bytes.Buffer
		id := strconv.FormatUint(call.ID, 10)
		if p := compactJSON(progress); p != nil {
			out.WriteString(`{"id":` + id + `,"progress":` + string(p) + "}\n")
		}
		if res := compactJSON(result); res != nil && !bytes.Equal(res, []byte("null")) {
			out.WriteString(`{"id":` + id + `,"result":` + string(res) + "}\n")
		} else {
			// Not a result: send the bytes as they are, a frame the client
			// must reject.
			out.Write(bytes.ReplaceAll(result, []byte("\n"), nil))
			out.WriteString("\n")
		}
		if _, err := c.Write(out.Bytes()); err != nil {
			return
		}
	}
}

// compactJSON is data on one line when it is one JSON value, else nil.
func compactJSON(data []byte) []byte {
	if len(data) == 0 || !json.Valid(data) {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil
	}
	return b.Bytes()
}

// FuzzManagerAnswers runs initctl's commands against a manager whose
// answers are fuzzed. Whatever comes back, initctl must not panic or hang,
// and an answer that is not a well-formed frame must never end in success.
func FuzzManagerAnswers(f *testing.F) {
	when := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	seeds := []any{
		api.UnitStatus{UnitSummary: api.UnitSummary{Name: "a.service", Description: "A", Load: "loaded", Active: "failed", Sub: "failed", MainPID: 7}, Result: "exit-code", ExitStatus: "signal=KILL", DropIns: []string{"/x/a.service.d/a.toml", "b.toml"}, ActiveEnter: when, Processes: []api.Process{{PID: 7, Command: "/bin/sh -c x"}}, Logs: []api.LogLine{{Unit: "a.service", PID: 7, Text: "hi", Time: when}}, Extra: map[string]string{"listen": "a\nb", "accepted": "1"}},
		[]api.UnitSummary{{Name: "a.socket", Type: "socket", Load: "loaded", Active: "active", Sub: "listening", JobType: "start", Extra: map[string]string{"next": "2024-03-01T12:00:00Z", "last": "x"}}},
		api.JobOutcome{Jobs: []api.JobInfo{{ID: 1, Unit: "a.service", Result: api.ResultFailed, Reason: "x."}, {Unit: "b", Result: "weird"}}},
		[]api.JobInfo{{ID: 1, Unit: "a.service", Type: "start", State: "running"}},
		[]api.Property{{Name: "Id", Value: "a.service"}, {Name: "Empty"}},
		[]api.LogLine{{Unit: "", PID: -1, Text: "\x1b[31m", Time: time.Time{}}},
		api.Changes{Changes: []api.Change{{Type: "symlink", Path: "/a", Destination: "/b"}, {Type: "?"}}},
		api.ReloadResult{Added: []string{"a"}, Problems: []string{"bad"}},
		[]string{"active", "failed"},
		map[string]any{"tasks": 1, "cpu_usage_nsec": uint64(1 << 63), "memory": uint64(1<<64 - 1)},
	}
	progress, _ := json.Marshal(api.JobEvent{JobID: 1, Unit: "a.service", Type: "start", State: "running"})
	for i, s := range seeds {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), progress, b)
		f.Add(uint8(i+3), []byte(nil), b)
	}
	f.Add(uint8(0), []byte(nil), []byte(`{"id":1,"result":1,"error":{"code":2}}`))
	f.Add(uint8(1), []byte(`{"jobId":-1}`), []byte(`[{"name":1}]`))
	f.Add(uint8(2), []byte(nil), []byte(`{"memory_current":-1}`))
	f.Add(uint8(6), []byte(`"x"`), []byte(`null`))
	f.Add(uint8(0), []byte(nil), []byte(`{"active_enter":"9999-12-31T23:59:59Z","state_change":"0001-01-01T00:00:00Z"}`))

	// answerCommands are the initctl command lines the fuzzer drives, one per
	// kind of answer the manager sends back (unit lists, status blocks, job
	// outcomes with progress frames, property lists, log lines, ...).
	answerCommands := [][]string{
		{"status", "a.service", "b.service"},
		{"list", "--all"},
		{"list-timers"},
		{"list-jobs"},
		{"show", "a.service"},
		{"show", "--value", "-p", "Id", "a.service"},
		{"start", "a.service"},
		{"stop", "--no-block", "a.service"},
		{"logs", "a.service"},
		{"observers"},
		{"is-active", "a.service"},
		{"is-enabled", "a.service"},
		{"enable", "a.service"},
		{"daemon-reload"},
		{"cat", "a.service"},
		{"top", "-n", "1"},
		{"audit"},
		{"audit", "status"},
		{"-o", "json", "status", "a.service"},
		{"-o", "json", "top", "-n", "1"},
	}
	m := newScriptedManager(f)
	f.Fuzz(func(t *testing.T, which uint8, progress, result []byte) {
		m.script(progress, result)
		args := answerCommands[int(which)%len(answerCommands)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		code := run(ctx, append([]string{"initctl", "--socket", m.socket}, args...), io.Discard, io.Discard)
		if ctx.Err() != nil {
			t.Fatalf("initctl %v did not finish on answer %q", args, result)
		}
		if compactJSON(result) == nil && code == exitOK {
			t.Fatalf("initctl %v succeeded on the malformed answer %q", args, result)
		}

		// The terminal renderings, which run() never picks with a buffer
		// for stdout.
		var st api.UnitStatus
		if json.Unmarshal(result, &st) == nil {
			for _, width := range []int{0, 1, 14, 80} {
				e, _ := testEnv(true, width)
				e.formatStatus(io.Discard, &st, 3)
			}
		}
		var units []api.UnitSummary
		if json.Unmarshal(result, &units) == nil {
			for _, width := range []int{0, 3, 80} {
				e, _ := testEnv(true, width)
				e.printUnitTable(units, false)
			}
		}
		var ev api.JobEvent
		if json.Unmarshal(progress, &ev) == nil {
			e, _ := testEnv(true, 80)
			now := e.now()
			spinnerLine(int(which), now, &runningJob{event: ev, since: now.Add(-time.Duration(which) * time.Hour)})
		}
	})
}
