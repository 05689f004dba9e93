package dbus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits of the handshake: a client that exceeds them is dropped.
const (
	saslMaxLine  = 512
	saslMaxLines = 32
)

// errAuthRejected says the handshake ended without an agreed identity.
var errAuthRejected = errors.New("sasl: authentication rejected")

// AuthResult is what a finished server handshake agreed on.
type AuthResult struct {
	// UnixFD is true when the client asked for fd passing and we agreed.
	UnixFD bool
}

// NewGUID returns a server GUID: 32 lowercase hex digits.
func NewGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; a fixed GUID is still valid.
		return "00000000000000000000000000000000"
	}
	return hex.EncodeToString(b[:])
}

// ServerHandshake runs the server side of D-Bus SASL EXTERNAL on r/w for a
// peer whose kernel-verified uid is peerUID. It reads one byte at a time so
// that nothing after "BEGIN\r\n" is consumed: r must not buffer ahead,
// unless it is the *bufio.Reader the caller goes on reading messages from.
// Replies are written when r has nothing more buffered, so that a client
// that sends the whole handshake at once (sd-bus) gets all the replies in
// one write, and each client's reply comes before ServerHandshake waits. It
// accepts sd-bus's form (AUTH EXTERNAL without identity, a DATA challenge,
// then an empty DATA), libdbus's (AUTH EXTERNAL <hex uid>) and GDBus's
// (a bare AUTH first, answered with REJECTED). The claimed identity, if
// any, must be the peer's uid.
func ServerHandshake(r io.Reader, w io.Writer, peerUID uint32, guid string, allowFDs bool) (AuthResult, error) {
	var res AuthResult
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return res, fmt.Errorf("sasl: read nul byte: %w", err)
	}
	if first[0] != 0 {
		return res, fmt.Errorf("sasl: first byte is %#x, not nul", first[0])
	}
	const (
		waitAuth = iota
		waitData
		authed
	)
	state := waitAuth
	var pending []byte
	reply := func(s string) error {
		pending = append(append(pending, s...), '\r', '\n')
		return nil
	}
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		_, err := w.Write(pending)
		if err != nil {
			err = fmt.Errorf("sasl: write %q: %w", pending, err)
		}
		pending = pending[:0]
		return err
	}
	lines := &flushingReader{r: r, flush: flush}
	// accept checks a claimed identity (hex of the decimal uid; empty
	// means "the one the transport proves").
	accept := func(hexID string) bool {
		if hexID == "" {
			return true
		}
		id, err := hex.DecodeString(hexID)
		if err != nil {
			return false
		}
		return string(id) == strconv.FormatUint(uint64(peerUID), 10)
	}
	for n := 0; n < saslMaxLines; n++ {
		line, err := readSASLLine(lines)
		if err != nil {
			return res, err
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch {
		case cmd == "AUTH" && state != authed:
			mech, initial, hasInitial := strings.Cut(arg, " ")
			switch {
			case mech != "EXTERNAL":
				state = waitAuth
				err = reply("REJECTED EXTERNAL")
			case !hasInitial:
				state = waitData
				err = reply("DATA")
			case accept(initial):
				state = authed
				err = reply("OK " + guid)
			default:
				state = waitAuth
				err = reply("REJECTED EXTERNAL")
			}
		case cmd == "DATA" && state == waitData:
			if accept(arg) {
				state = authed
				err = reply("OK " + guid)
			} else {
				state = waitAuth
				err = reply("REJECTED EXTERNAL")
			}
		case (cmd == "CANCEL" || cmd == "ERROR") && state != authed:
			state = waitAuth
			err = reply("REJECTED EXTERNAL")
		case cmd == "NEGOTIATE_UNIX_FD" && arg == "" && state == authed:
			if allowFDs {
				res.UnixFD = true
				err = reply("AGREE_UNIX_FD")
			} else {
				err = reply("ERROR fd passing is not supported")
			}
		case cmd == "BEGIN" && arg == "" && state == authed:
			return res, flush()
		default:
			err = reply("ERROR")
		}
		if err != nil {
			return res, err
		}
	}
	return res, errors.Join(errAuthRejected, flush())
}

// flushingReader writes the pending replies before a read that would wait
// for the peer: always, unless r is buffered and has bytes left.
type flushingReader struct {
	r     io.Reader
	flush func() error
}

func (f *flushingReader) Read(p []byte) (int, error) {
	if b, ok := f.r.(interface{ Buffered() int }); !ok || b.Buffered() == 0 {
		if err := f.flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

// readSASLLine reads one CRLF-terminated line byte by byte and returns it
// without the terminator. A bare LF is accepted too.
func readSASLLine(r io.Reader) (string, error) {
	var buf [saslMaxLine]byte
	var b [1]byte
	n := 0
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("sasl: read line: %w", err)
		}
		if b[0] == '\n' {
			line := buf[:n]
			if n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return string(line), nil
		}
		if n == len(buf) {
			return "", fmt.Errorf("sasl: line longer than %d bytes", saslMaxLine)
		}
		if b[0] < 0x20 && b[0] != '\r' || b[0] > 0x7e {
			return "", fmt.Errorf("sasl: byte %#x in a line", b[0])
		}
		buf[n] = b[0]
		n++
	}
}

// ClientHandshake runs the client side of SASL EXTERNAL (for the system bus)
// with our own uid. It reads byte by byte for the same reason as the server.
func ClientHandshake(r io.Reader, w io.Writer, uid uint32) error {
	id := hex.EncodeToString([]byte(strconv.FormatUint(uint64(uid), 10)))
	if _, err := io.WriteString(w, "\x00AUTH EXTERNAL "+id+"\r\n"); err != nil {
		return fmt.Errorf("sasl: write auth: %w", err)
	}
	line, err := readSASLLine(r)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "OK ") {
		return fmt.Errorf("sasl: bus answered %q", line)
	}
	if _, err := io.WriteString(w, "BEGIN\r\n"); err != nil {
		return fmt.Errorf("sasl: write begin: %w", err)
	}
	return nil
}
