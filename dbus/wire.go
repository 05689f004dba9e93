package dbus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// maxMessage bounds one incoming message; systemd's own limit is 128 MiB,
// but nothing a client sends to the manager comes near 8 MiB.
const maxMessage = 8 << 20

// readFrame reads one complete message (fixed header, header fields,
// padding, body) without decoding it, so that a message whose body is
// malformed can still be answered with an error.
func readFrame(r *bufio.Reader) ([]byte, error) {
	head, err := r.Peek(16)
	if err != nil {
		return nil, err
	}
	var order binary.ByteOrder
	switch head[0] {
	case 'l':
		order = binary.LittleEndian
	case 'B':
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("read message: bad byte order %#x", head[0])
	}
	if head[3] != 1 {
		return nil, fmt.Errorf("read message: protocol version %d", head[3])
	}
	body := uint64(order.Uint32(head[4:8]))
	fields := uint64(order.Uint32(head[12:16]))
	total := 16 + (fields+7)&^7 + body
	if total > maxMessage {
		return nil, fmt.Errorf("read message: %d bytes is over the limit of %d", total, maxMessage)
	}
	frame := make([]byte, total)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return frame, nil
}

// frameSerial gives the serial and type of a raw frame.
func frameSerial(frame []byte) (serial uint32, typ dbus.Type) {
	if len(frame) < 16 {
		return 0, 0
	}
	if frame[0] == 'B' {
		return binary.BigEndian.Uint32(frame[8:12]), dbus.Type(frame[1])
	}
	return binary.LittleEndian.Uint32(frame[8:12]), dbus.Type(frame[1])
}

// decodeFrame decodes a frame read by readFrame. godbus panics on nothing
// we know of, but a decoder of outside input must never take the process
// down, so a panic becomes an error.
func decodeFrame(frame []byte) (msg *dbus.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("decode message: panic: %v", r)
		}
	}()
	msg, err = dbus.DecodeMessage(bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return msg, nil
}

// encodeMessage encodes msg little-endian with serial 0; setSerial fills
// the serial in later, per connection.
func encodeMessage(msg *dbus.Message) ([]byte, error) {
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encode %s: %w", msg.Type, err)
	}
	return buf.Bytes(), nil
}

func setSerial(frame []byte, serial uint32) {
	binary.LittleEndian.PutUint32(frame[8:12], serial)
}

// fdDroppingReader reads a unix socket with recvmsg and closes any file
// descriptors that come along: we agree to fd passing (sd-bus expects it)
// but no method we serve takes one, and unclosed fds would leak.
type fdDroppingReader struct {
	c   *net.UnixConn
	oob []byte
}

func (r *fdDroppingReader) Read(p []byte) (int, error) {
	n, oobn, _, _, err := r.c.ReadMsgUnix(p, r.oob)
	if n < 0 {
		n = 0
	}
	if oobn > 0 {
		closeRights(r.oob[:oobn])
	}
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return n, err
}

func closeRights(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// peerConn is one D-Bus connection: a peer-to-peer client or the bus. Its
// reader goroutine decodes messages; its writer goroutine drains a bounded
// queue, so nobody else ever blocks on the socket.
type peerConn struct {
	c       net.Conn
	onBus   bool // replies need DESTINATION; callers are identified by SENDER
	uid     uint32
	name    string // our unique name on the bus, or the one Hello gave the peer
	out     chan []byte
	serial  atomic.Uint32
	dropped atomic.Uint64 // signals lost because the queue was full

	closeOnce sync.Once
	closed    chan struct{}

	mu      sync.Mutex
	pending map[uint32]chan *dbus.Message // our calls awaiting replies

	// uids caches callers' uids on the bus; nil on peer-to-peer.
	uids *uidCache
}

func newPeerConn(c net.Conn, queue int, onBus bool) *peerConn {
	return &peerConn{c: c, onBus: onBus, out: make(chan []byte, queue), closed: make(chan struct{}),
		pending: map[uint32]chan *dbus.Message{}}
}

func (p *peerConn) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.c.Close()
	})
}

// nextSerial never returns 0.
func (p *peerConn) nextSerial() uint32 {
	for {
		if s := p.serial.Add(1); s != 0 {
			return s
		}
	}
}

// send queues a frame that is this connection's own (a reply or a call):
// it waits for room, since only this peer's own goroutine waits.
func (p *peerConn) send(frame []byte) (uint32, bool) {
	s := p.nextSerial()
	setSerial(frame, s)
	select {
	case p.out <- frame:
		return s, true
	case <-p.closed:
		return 0, false
	}
}

// trySend queues a copy of a shared frame (a signal) without waiting: a
// slow peer loses it, and the loss is counted.
func (p *peerConn) trySend(shared []byte) bool {
	frame := append([]byte(nil), shared...)
	setSerial(frame, p.nextSerial())
	select {
	case p.out <- frame:
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

// writeLoop writes queued frames until the connection closes. A peer that
// does not read for writeTimeout is disconnected.
func (p *peerConn) writeLoop(writeTimeout time.Duration) {
	defer p.Close()
	for {
		select {
		case frame := <-p.out:
			p.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := p.c.Write(frame); err != nil {
				return
			}
		case <-p.closed:
			return
		}
	}
}

// call sends a method call and waits for its reply (used on the bus:
// Hello, RequestName, GetConnectionUnixUser).
func (p *peerConn) call(dest string, path dbus.ObjectPath, iface, member string, timeout time.Duration, args ...any) (*dbus.Message, error) {
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:   dbus.MakeVariant(path),
		dbus.FieldMember: dbus.MakeVariant(member),
	}, Body: args}
	if iface != "" {
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(iface)
	}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	frame, err := encodeMessage(msg)
	if err != nil {
		return nil, err
	}
	ch := make(chan *dbus.Message, 1)
	// The serial must be registered before the frame can be answered.
	s := p.nextSerial()
	setSerial(frame, s)
	p.mu.Lock()
	p.pending[s] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, s)
		p.mu.Unlock()
	}()
	select {
	case p.out <- frame:
	case <-p.closed:
		return nil, errConnClosed
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case reply := <-ch:
		if reply.Type == dbus.TypeError {
			name, _ := reply.Headers[dbus.FieldErrorName].Value().(string)
			text := ""
			if len(reply.Body) > 0 {
				text, _ = reply.Body[0].(string)
			}
			return nil, &Error{Name: name, Message: text}
		}
		return reply, nil
	case <-p.closed:
		return nil, errConnClosed
	case <-t.C:
		return nil, fmt.Errorf("call %s.%s: no reply in %v", iface, member, timeout)
	}
}

var errConnClosed = errors.New("dbus connection closed")

// deliverReply routes a method return or error to a waiting call.
func (p *peerConn) deliverReply(msg *dbus.Message) {
	rs, _ := msg.Headers[dbus.FieldReplySerial].Value().(uint32)
	p.mu.Lock()
	ch := p.pending[rs]
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- msg:
		default:
		}
	}
}
