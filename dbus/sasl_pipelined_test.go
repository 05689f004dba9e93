package dbus

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

// countingWriter records each Write separately.
type countingWriter struct{ writes []string }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

// TestServerHandshakeBufferedPipelined: sd-bus sends the whole handshake
// at once and the first message right after; through a bufio.Reader the
// server answers in one write and leaves the message in the buffer.
func TestServerHandshakeBufferedPipelined(t *testing.T) {
	msg := "l\x01\x00\x01rest of the first message"
	in := "\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n" + msg
	r := bufio.NewReader(strings.NewReader(in))
	var w countingWriter
	res, err := ServerHandshake(r, &w, 0, testGUID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.UnixFD {
		t.Error("fd passing not agreed")
	}
	want := "DATA\r\nOK " + testGUID + "\r\nAGREE_UNIX_FD\r\n"
	if len(w.writes) != 1 || w.writes[0] != want {
		t.Fatalf("writes %q, want the one write %q", w.writes, want)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != msg {
		t.Fatalf("after BEGIN the reader holds %q, want %q", rest, msg)
	}
}

// TestServerHandshakeBufferedStepwise: a client that waits for each reply
// (libdbus) gets it before the server waits for the next line, over a
// real socket; a rejected mechanism is answered too.
func TestServerHandshakeBufferedStepwise(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	done := make(chan error, 1)
	go func() {
		_, err := ServerHandshake(bufio.NewReader(srv), srv, 0, testGUID, false)
		done <- err
	}()
	replies := bufio.NewReader(cli)
	step := func(send, want string) {
		t.Helper()
		if _, err := io.WriteString(cli, send); err != nil {
			t.Fatal(err)
		}
		line, err := replies.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("after %q: reply %q (%v), want %q", send, line, err, want)
		}
	}
	step("\x00AUTH KERBEROS\r\n", "REJECTED EXTERNAL")
	step("AUTH EXTERNAL 30\r\n", "OK "+testGUID)
	step("NEGOTIATE_UNIX_FD\r\n", "ERROR")
	if _, err := io.WriteString(cli, "BEGIN\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzSASLBuffered: through a bufio.Reader the handshake answers the same
// bytes, ends the same way and leaves exactly what the one-byte reader
// leaves unread (what follows BEGIN is the first message).
func FuzzSASLBuffered(f *testing.F) {
	f.Add([]byte("\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nl\x01\x00\x01"))
	f.Add([]byte("\x00AUTH EXTERNAL 30\r\nBEGIN\r\n"))
	f.Add([]byte("\x00AUTH\r\nAUTH EXTERNAL\r\nCANCEL\r\nAUTH EXTERNAL 31\r\nBEGIN\r\n"))
	f.Add([]byte("\x00AUTH EXTERNAL\r\nDATA 3130\r\nBEGIN\r\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var slowOut bytes.Buffer
		slowIn := bytes.NewReader(data)
		slowRes, slowErr := ServerHandshake(oneByteReader{slowIn}, &slowOut, 0, testGUID, true)
		var fastOut bytes.Buffer
		br := bufio.NewReader(bytes.NewReader(data))
		fastRes, fastErr := ServerHandshake(br, &fastOut, 0, testGUID, true)
		if (slowErr == nil) != (fastErr == nil) || slowRes != fastRes {
			t.Fatalf("one-byte reader: %+v, %v; buffered: %+v, %v", slowRes, slowErr, fastRes, fastErr)
		}
		if slowErr == nil {
			if slowOut.String() != fastOut.String() {
				t.Fatalf("replies differ: %q and %q", slowOut.String(), fastOut.String())
			}
			rest, _ := io.ReadAll(br)
			if want := data[len(data)-slowIn.Len():]; !bytes.Equal(rest, want) {
				t.Fatalf("left %q unread, want %q", rest, want)
			}
		}
	})
}
