package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
)

// Cred is the peer's identity as the kernel reported it (SO_PEERCRED).
type Cred struct {
	PID int `json:"pid"`
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// Request is one call, handed to the loop as the Payload of a control event.
// Its methods are meant for the loop goroutine and never block: frames are
// queued to the connection's writer.
type Request struct {
	ID     uint64
	Method string
	Args   json.RawMessage
	Peer   Cred

	conn     *conn
	answered atomic.Bool
}

// Decode unmarshals the call's arguments into v. Missing arguments leave v
// untouched; unknown fields are rejected so that a typo in a client shows.
func (r *Request) Decode(v any) error {
	if len(r.Args) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.Args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: bad arguments: %w", r.Method, err)
	}
	return nil
}

// Reply sends the final result. A second answer is ignored (and logged); an
// answer after the client went away is discarded.
func (r *Request) Reply(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		r.Fail(1, "%s: cannot encode result: %v", r.Method, err)
		return
	}
	r.final(Frame{ID: r.ID, Result: data})
}

// Fail sends an error frame as the final answer.
func (r *Request) Fail(code int, format string, args ...any) {
	r.final(Frame{ID: r.ID, Error: &Error{Code: code, Message: fmt.Sprintf(format, args...)}})
}

// FailErr is Fail with an error; a *Error keeps its code.
func (r *Request) FailErr(code int, err error) {
	if e, ok := err.(*Error); ok {
		r.final(Frame{ID: r.ID, Error: e})
		return
	}
	r.Fail(code, "%v", err)
}

func (r *Request) final(f Frame) {
	if r.answered.Swap(true) {
		r.conn.server.logf("control: %s call %d from pid %d answered twice; second answer ignored", r.Method, r.ID, r.Peer.PID)
		return
	}
	r.conn.out.finishCall(f)
}

// Progress sends a progress frame. It never blocks: when the client reads
// too slowly the frame is dropped and counted, and Progress reports false.
// Progress after the final answer is ignored.
func (r *Request) Progress(v any) bool {
	if r.answered.Load() {
		return false
	}
	data, err := json.Marshal(v)
	if err != nil {
		r.conn.server.logf("control: %s call %d: cannot encode progress: %v", r.Method, r.ID, err)
		return false
	}
	if !r.conn.out.addProgress(encodeFrame(Frame{ID: r.ID, Progress: data})) {
		r.conn.server.progressDropped.Add(1)
		return false
	}
	return true
}

// Done is closed when the client disconnects (or the server closes): a
// manager streaming logs or events stops then.
func (r *Request) Done() <-chan struct{} { return r.conn.done }

// Closed reports whether the client is gone.
func (r *Request) Closed() bool {
	select {
	case <-r.conn.done:
		return true
	default:
		return false
	}
}

// Answered reports whether the final frame was sent.
func (r *Request) Answered() bool { return r.answered.Load() }

// NewTestRequest makes a Request attached to no socket, for guests that test
// their handlers without one. frames returns, in order, every frame the
// handler sent since the last call to frames. Disconnect simulates the
// client going away.
func NewTestRequest(method string, args any) (req *Request, frames func() []Frame, disconnect func(), err error) {
	data, err := json.Marshal(args)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("test request %s: %w", method, err)
	}
	c := &conn{server: &Server{}, out: newOutbound(defaultProgressLimit), done: make(chan struct{})}
	c.out.begin(1)
	req = &Request{ID: 1, Method: method, Args: data, conn: c}
	frames = func() []Frame {
		queued, _ := c.out.take()
		out := make([]Frame, 0, len(queued))
		progress, finals := 0, 0
		for _, q := range queued {
			if q.final {
				finals++
			} else {
				progress++
			}
			f, err := DecodeFrame(bytes.TrimSuffix(q.data, []byte("\n")))
			if err != nil {
				f = Frame{ID: req.ID, Error: &Error{Code: 1, Message: err.Error()}}
			}
			out = append(out, f)
		}
		c.out.written(progress, finals)
		return out
	}
	var once sync.Once
	disconnect = func() { once.Do(func() { close(c.done); c.out.close() }) }
	return req, frames, disconnect, nil
}
