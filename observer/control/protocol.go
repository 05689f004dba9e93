// Package control owns Vigil's control socket: the framing of the control
// protocol, the server that turns each request into an observer event from
// the "control" source, and the client that initctl uses.
//
// # Protocol
//
// Newline-delimited JSON over a unix stream socket. The client sends a call
//
//	{"id":N,"method":"...","args":{...}}
//
// and the server answers with zero or more progress frames, then exactly one
// final frame, either a result or an error:
//
//	{"id":N,"progress":{...}}
//	{"id":N,"result":{...}}
//	{"id":N,"error":{"code":C,"message":"..."}}
//
// A final result frame may carry "dropped":K, the number of progress frames
// the server threw away because the client read too slowly.
//
// Calls on one connection are sequential: a client sends its next call only
// after the final frame of the previous one. Pipelining is not supported; a
// call that arrives while another is still being answered gets an error frame
// of its own (CodeProtocol) and the earlier call goes on undisturbed. A call
// longer than the frame limit (1 MiB by default) gets an error frame and the
// connection is closed, since the rest of the stream can no longer be framed.
//
// # Who decides
//
// The server decides nothing about the methods themselves: every call that is
// well formed and permitted becomes an observer.Event{Source: "control",
// Kind: method} whose Payload is a *Request. The manager registers an
// observer for source=control and answers on the loop goroutine through the
// Request's non-blocking methods. The server only enforces framing, size
// limits and the peer check (SO_PEERCRED: root, or a read-only method).
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame bounds one call sent to the server.
const DefaultMaxFrame = 1 << 20

// ClientMaxFrame bounds one frame the client accepts from the server; results
// such as a full unit listing can be far larger than any call.
const ClientMaxFrame = 64 << 20

// Error codes the server itself sends. Methods answered by the manager use
// their own codes (see units/api); these are chosen not to collide.
const (
	// CodeProtocol: the frame was not a valid call (bad JSON, no method,
	// too large, or sent while another call was still being answered).
	CodeProtocol = 2
	// CodeAccess: the peer may not call this method.
	CodeAccess = 5
	// CodeBusy: the manager's control queue is full; try again.
	CodeBusy = 75
	// CodeShutdown: the server is closing.
	CodeShutdown = 76
)

// Call is what a client sends.
type Call struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method"`
	Args   json.RawMessage `json:"args,omitempty"`
}

// Frame is what the server sends. Exactly one of Progress, Result and Error
// is set; a frame with Result or Error is final.
type Frame struct {
	ID       uint64          `json:"id"`
	Progress json.RawMessage `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	// Dropped counts progress frames of this call that were lost because the
	// client read too slowly; only on final frames.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Final reports whether the frame ends its call.
func (f *Frame) Final() bool { return f.Error != nil || f.Result != nil }

// Error is an error frame's body, and the error Client.Call returns for it.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// ErrFrameTooLarge is returned by FrameReader.Next when a line exceeds the
// limit.
var ErrFrameTooLarge = errors.New("frame too large")

// readChunk is how much a FrameReader asks of the connection at a time.
const readChunk = 32 << 10

// FrameReader splits a stream into newline-terminated frames of bounded
// size. Unlike bufio.Reader.ReadSlice it returns to the caller as soon as a
// partial line is over the limit, so a peer cannot park a huge half-written
// frame on the server.
type FrameReader struct {
	r       io.Reader
	max     int
	buf     []byte
	start   int // unread data is buf[start:]
	scanned int // bytes of buf[start:] known to hold no newline
	err     error
}

// NewFrameReader reads frames of at most max bytes (without the newline).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: r, max: max}
}

// Next returns the next frame, valid until the following call. A final line
// without a newline at EOF is returned as a frame; after that the read error
// is returned. After ErrFrameTooLarge the stream cannot be framed any more.
func (f *FrameReader) Next() ([]byte, error) {
	for {
		pending := f.buf[f.start:]
		if i := bytes.IndexByte(pending[f.scanned:], '\n'); i >= 0 {
			end := f.scanned + i
			if end > f.max {
				return nil, ErrFrameTooLarge
			}
			f.start += end + 1
			f.scanned = 0
			return pending[:end], nil
		}
		f.scanned = len(pending)
		if len(pending) > f.max {
			return nil, ErrFrameTooLarge
		}
		if f.err != nil {
			if len(pending) > 0 {
				f.start, f.scanned = len(f.buf), 0
				return pending, nil
			}
			return nil, f.err
		}
		f.compact()
		n, err := f.r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+n]
		if err != nil {
			f.err = err
		}
	}
}

// compact moves unread data to the front and makes room for a read,
// returning memory a past large frame left behind.
func (f *FrameReader) compact() {
	pending := f.buf[f.start:]
	if cap(f.buf) > 4*readChunk && len(pending) < readChunk {
		f.buf = append(make([]byte, 0, 2*readChunk), pending...)
	} else if f.start > 0 {
		f.buf = f.buf[:copy(f.buf, pending)]
	}
	f.start = 0
	if cap(f.buf)-len(f.buf) < readChunk {
		grown := make([]byte, len(f.buf), 2*cap(f.buf)+readChunk)
		copy(grown, f.buf)
		f.buf = grown
	}
}

// DecodeCall parses one call frame. The returned ID is valid (possibly 0)
// even when the error is not nil, so that an error frame can name the call.
func DecodeCall(line []byte) (Call, error) {
	var c Call
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return c, fmt.Errorf("empty frame")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		// Salvage the id if the frame is an object with a numeric id, so the
		// client can match the error to its call.
		var probe struct {
			ID uint64 `json:"id"`
		}
		if json.Unmarshal(line, &probe) == nil {
			c = Call{ID: probe.ID}
		} else {
			c = Call{}
		}
		return c, fmt.Errorf("malformed call: %w", err)
	}
	if dec.More() {
		return Call{ID: c.ID}, fmt.Errorf("malformed call: trailing data after the JSON object")
	}
	if c.Method == "" {
		return Call{ID: c.ID}, fmt.Errorf("malformed call: no method")
	}
	if len(c.Method) > 128 {
		return Call{ID: c.ID}, fmt.Errorf("malformed call: method name longer than 128 bytes")
	}
	if bytes.Equal(c.Args, []byte("null")) {
		c.Args = nil
	}
	return c, nil
}

// DecodeFrame parses one server frame, as the client sees it.
func DecodeFrame(line []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(line, &f); err != nil {
		return Frame{}, fmt.Errorf("malformed frame from server: %w", err)
	}
	n := 0
	if f.Progress != nil {
		n++
	}
	if f.Result != nil {
		n++
	}
	if f.Error != nil {
		n++
	}
	if n != 1 {
		return Frame{}, fmt.Errorf("malformed frame from server: want exactly one of progress, result, error (frame %d)", f.ID)
	}
	return f, nil
}

// encodeFrame renders a frame as one line, newline included.
func encodeFrame(f Frame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		// Only a RawMessage that is not valid JSON gets here, and the
		// server builds those with json.Marshal: report, do not panic.
		b, _ = json.Marshal(Frame{ID: f.ID, Error: &Error{Code: 1, Message: "internal error: " + err.Error()}})
	}
	return append(b, '\n')
}
