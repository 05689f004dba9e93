package dbus

import (
	"bufio"
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
