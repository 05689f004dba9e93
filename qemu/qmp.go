package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// QMPError is an error QEMU answered a command with.
type QMPError struct {
	Command string
	Class   string
	Desc    string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// Event is an asynchronous QMP event (SHUTDOWN, DEVICE_DELETED, ...).
type Event struct {
	Name      string
	Data      json.RawMessage
	Timestamp time.Time
}

// qmpMessage is any message QEMU sends: a greeting, a reply (return or
// error, carrying our id back) or an event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	ID        json.RawMessage `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// parseQMPMessage decodes one line from QEMU. It is fuzzed: the socket is
// outside input.
func parseQMPMessage(line []byte) (qmpMessage, error) {
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: bad message %.200q: %w", line, err)
	}
	if m.QMP == nil && m.Return == nil && m.Error == nil && m.Event == "" {
		return m, fmt.Errorf("qmp: message %.200q is neither greeting, reply nor event", line)
	}
	return m, nil
}

// eventBuffer is how many events are kept for Events() before the oldest
// are dropped: a test that does not read events must not stall the reader.
const eventBuffer = 256

// QMP is a client of QEMU's machine protocol on a unix socket. Commands
// may be sent from several goroutines; replies are matched by id. Events
// are delivered on Events(), dropping the oldest when nobody reads.
type QMP struct {
	conn    net.Conn
	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int
	pending map[string]chan qmpMessage
	readErr error
	dropped int

	events chan Event
	done   chan struct{}
}

// DialQMP connects to the QMP socket at path, reads the greeting and
// leaves capabilities negotiation mode. It retries until ctx ends, since
// QEMU creates the socket a moment after it starts.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to QMP socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	q := &QMP{conn: conn, pending: map[string]chan qmpMessage{}, events: make(chan Event, eventBuffer), done: make(chan struct{})}
	r := bufio.NewReader(conn)
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read QMP greeting from %s: %w", path, err)
	}
	if m, err := parseQMPMessage(line); err != nil || m.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting from %s: %.200q", path, line)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go q.readLoop(r)
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMP) readLoop(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = r.ReadBytes('\n')
		if err != nil {
			break
		}
		m, perr := parseQMPMessage(line)
		if perr != nil {
			continue // a malformed line is skipped, not fatal
		}
		if m.Event != "" {
			q.deliver(m)
			continue
		}
		var id string
		_ = json.Unmarshal(m.ID, &id)
		q.mu.Lock()
		ch := q.pending[id]
		delete(q.pending, id)
		q.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	q.mu.Lock()
	q.readErr = err
	q.mu.Unlock()
	close(q.done)
}

func (q *QMP) deliver(m qmpMessage) {
	ev := Event{Name: m.Event, Data: m.Data}
	if m.Timestamp != nil {
		ev.Timestamp = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
	}
	for {
		select {
		case q.events <- ev:
			return
		default:
		}
		select {
		case <-q.events:
			q.mu.Lock()
			q.dropped++
			q.mu.Unlock()
		default:
		}
	}
}

// Events delivers QMP events in order; when more than 256 are unread the
// oldest are dropped (see Dropped).
func (q *QMP) Events() <-chan Event { return q.events }

// Dropped counts events dropped because nobody read them.
func (q *QMP) Dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// WaitEvent waits for the next event called name, discarding others.
func (q *QMP) WaitEvent(ctx context.Context, name string) (Event, error) {
	for {
		select {
		case ev := <-q.events:
			if ev.Name == name {
				return ev, nil
			}
		case <-q.done:
			return Event{}, fmt.Errorf("qmp: waiting for event %s: connection closed", name)
		case <-ctx.Done():
			return Event{}, fmt.Errorf("qmp: waiting for event %s: %w", name, ctx.Err())
		}
	}
}

// Execute sends a command with arguments (nil for none) and returns its
// "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	q.nextID++
	id := fmt.Sprintf("vigil-%d", q.nextID)
	ch := make(chan qmpMessage, 1)
	q.pending[id] = ch
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
	}()
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	q.writeMu.Lock()
	if deadline, ok := ctx.Deadline(); ok {
		_ = q.conn.SetWriteDeadline(deadline)
	}
	_, err = q.conn.Write(append(data, '\n'))
	q.writeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, &QMPError{Command: command, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		return m.Return, nil
	case <-q.done:
		q.mu.Lock()
		err := q.readErr
		q.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: connection closed before the reply: %v", command, err)
	case <-ctx.Done():
		return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
}

// Status is the answer of query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus asks whether the guest runs.
func (q *QMP) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("qmp query-status: %w", err)
	}
	return s, nil
}

// SendKey presses keys together, given as QEMU key codes joined by '-',
// e.g. "ctrl-alt-delete".
func (q *QMP) SendKey(ctx context.Context, combo string) error {
	var keys []map[string]string
	for _, k := range strings.Split(combo, "-") {
		if k == "" {
			return fmt.Errorf("qmp send-key: bad key combination %q", combo)
		}
		keys = append(keys, map[string]string{"type": "qcode", "data": k})
	}
	_, err := q.Execute(ctx, "send-key", map[string]any{"keys": keys})
	return err
}

// DeviceAdd adds a device: driver (e.g. "virtio-blk-pci"), id, and
// properties (e.g. {"drive": "d1"}).
func (q *QMP) DeviceAdd(ctx context.Context, driver, id string, props map[string]any) error {
	args := map[string]any{"driver": driver, "id": id}
	for k, v := range props {
		args[k] = v
	}
	_, err := q.Execute(ctx, "device_add", args)
	return err
}

// DeviceDel asks the guest to release a device. Removal completes when the
// DEVICE_DELETED event arrives (WaitEvent), after the guest cooperates.
func (q *QMP) DeviceDel(ctx context.Context, id string) error {
	_, err := q.Execute(ctx, "device_del", map[string]any{"id": id})
	return err
}

// Quit ends QEMU at once (no guest shutdown).
func (q *QMP) Quit(ctx context.Context) error {
	_, err := q.Execute(ctx, "quit", nil)
	if err != nil && !errors.Is(err, context.Canceled) && strings.Contains(err.Error(), "connection closed") {
		return nil // QEMU may close the socket before the reply arrives
	}
	return err
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
