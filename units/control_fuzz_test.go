package units

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
)

// fuzzRequest is a control request whose arguments are fuzzed; every
// answer goes to answers.
type fuzzRequest struct {
	args    []byte
	answers chan string
}

func (r *fuzzRequest) Decode(v any) error {
	if len(r.args) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.args, v); err != nil {
		return err
	}
	if la, ok := v.(*api.LogsArgs); ok {
		la.Follow = false // a stream would answer only when the client leaves
	}
	return nil
}

func (r *fuzzRequest) Reply(v any) {
	// The control server sends the reply as JSON: it must encode.
	if _, err := json.Marshal(v); err != nil {
		r.answers <- fmt.Sprintf("reply that does not encode: %v", err)
		return
	}
	r.answers <- "reply"
}

func (r *fuzzRequest) Fail(code int, format string, args ...any) {
	r.answers <- "fail"
}

func (r *fuzzRequest) Progress(v any) bool   { return true }
func (r *fuzzRequest) Done() <-chan struct{} { return nil }

// FuzzHandleRequest sends control requests with fuzzed arguments to a
// running manager: each must be answered exactly once, by a reply that
// encodes or by an error, and never take the loop down. Only methods that
// change nothing outside the test's directory are called: a fuzzed job
// could mount or start whatever a unit name says.
func FuzzHandleRequest(f *testing.F) {
	methods := []string{api.MethodPing, api.MethodList, api.MethodStatus, api.MethodShow, api.MethodCat,
		api.MethodIsActive, api.MethodIsFailed, api.MethodIsEnabled, api.MethodListJobs, api.MethodLogs,
		api.MethodObservers, api.MethodResetFailed, api.MethodCancel}
	for i, args := range []string{
		``, `{"types":["service"],"states":["failed"],"patterns":["*"],"all":true}`, `{"unit":"a.service","lines":-1}`,
		`{"unit":"a.service","properties":["Id","NoSuch",""]}`, `{"unit":"\u00ff.service"}`, `{"units":["a.service","b"]}`,
		`{"units":["a.service",""]}`, `{"units":["a.service","../x"]}`, `null`, `{"unit":"a.service","lines":-9223372036854775808,"follow":true}`,
		`[]`, `{"units":["*"]}`, `{"job":18446744073709551615}`,
	} {
		f.Add(uint8(i), []byte(args))
	}
	f.Add(uint8(2), []byte(`{"unit":""}`))
	f.Add(uint8(4), []byte(`{"unit":"/"}`))

	dir := f.TempDir()
	unitDir := filepath.Join(dir, "units")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unitDir, "a.service"), []byte("[unit]\ndescription = \"A\"\n[service]\nexec-start = [\"/bin/true\"]\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	loop := observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := process.Start(ctx, loop); err != nil {
		cancel()
		f.Fatal(err)
	}
	m, err := New(loop, Options{UnitPaths: []string{unitDir}, RuntimeDir: filepath.Join(dir, "run"),
		StateDir: filepath.Join(dir, "state"), Logf: func(string, ...any) {}, NoCgroups: true})
	if err != nil {
		cancel()
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	f.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})

	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		method := methods[int(which)%len(methods)]
		req := &fuzzRequest{args: args, answers: make(chan string, 4)}
		callCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		if err := loop.Call(callCtx, func() { m.HandleRequest(method, req) }); err != nil {
			t.Fatalf("%s %q: loop call: %v", method, args, err)
		}
		select {
		case a := <-req.answers:
			if a != "reply" && a != "fail" {
				t.Fatalf("%s %q: %s", method, args, a)
			}
		case <-callCtx.Done():
			t.Fatalf("%s %q: no answer", method, args)
		}
		// A second answer would be on its way by the next loop turn.
		if err := loop.Call(callCtx, func() {}); err != nil {
			t.Fatalf("loop call: %v", err)
		}
		select {
		case a := <-req.answers:
			t.Fatalf("%s %q: answered twice (then %s)", method, args, a)
		default:
		}
	})
}
