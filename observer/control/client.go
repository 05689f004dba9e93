package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Client is one connection to a control socket. Calls on it are sequential
// (Call holds a lock for the whole exchange).
type Client struct {
	path string
	nc   net.Conn
	r    *FrameReader

	mu     sync.Mutex
	nextID uint64
	broken error
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	nc, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return &Client{path: path, nc: nc, r: NewFrameReader(nc, ClientMaxFrame)}, nil
}

// Close ends the connection; the server sees the client go away.
func (c *Client) Close() error { return c.nc.Close() }

// Call sends one call and waits for its final frame. args is marshalled as
// the call's arguments (nil sends none); the result is unmarshalled into
// result (nil ignores it). onProgress, if not nil, gets every progress
// frame's body in order. An error frame comes back as a *Error.
//
// When ctx ends the connection is closed (so the server stops any stream
// it was sending) and Call returns ctx.Err(); the Client is then unusable.
func (c *Client) Call(ctx context.Context, method string, args any, result any, onProgress func(json.RawMessage)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	c.nextID++
	call := Call{ID: c.nextID, Method: method}
	if args != nil {
		data, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("%s: encode arguments: %w", method, err)
		}
		call.Args = data
	}
	line, err := json.Marshal(call)
	if err != nil {
		return fmt.Errorf("%s: encode call: %w", method, err)
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		c.broken = fmt.Errorf("control connection to %s unusable after an earlier failure: %w", c.path, err)
		c.nc.Close()
		return err
	}
	if _, err := c.nc.Write(append(line, '\n')); err != nil {
		return fail(fmt.Errorf("%s: send to %s: %w", method, c.path, err))
	}
	for {
		data, err := c.r.Next()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				err = fmt.Errorf("%s: %s closed the connection before answering", method, c.path)
			} else {
				err = fmt.Errorf("%s: read from %s: %w", method, c.path, err)
			}
			return fail(err)
		}
		f, err := DecodeFrame(data)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", method, err))
		}
		if f.ID != call.ID {
			// An error frame with id 0 is the server refusing the stream
			// as a whole (too many connections, frame too large).
			if f.ID == 0 && f.Error != nil {
				return fail(f.Error)
			}
			return fail(fmt.Errorf("%s: frame for call %d while waiting for call %d", method, f.ID, call.ID))
		}
		switch {
		case f.Error != nil:
			return f.Error
		case f.Result != nil:
			if result != nil {
				if err := json.Unmarshal(f.Result, result); err != nil {
					return fmt.Errorf("%s: decode result: %w", method, err)
				}
			}
			return nil
		default:
			if onProgress != nil {
				onProgress(f.Progress)
			}
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
