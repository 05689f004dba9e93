package dbus

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

const testGUID = "0123456789abcdef0123456789abcdef"

// oneByteReader hands out one byte per Read, like a socket that the
// handshake must not read past.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestServerHandshakeForms(t *testing.T) {
	const after = "lMESSAGE BYTES"
	for _, tc := range []struct {
		name, in, want string
		uid            uint32
		fds            bool
		ok             bool
	}{
		{"sd-bus pipelined", "\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n", "DATA\r\nOK " + testGUID + "\r\nAGREE_UNIX_FD\r\n", 0, true, true},
		{"libdbus", "\x00AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n", "OK " + testGUID + "\r\nAGREE_UNIX_FD\r\n", 0, true, true},
		{"gdbus", "\x00AUTH\r\nAUTH EXTERNAL 30\r\nBEGIN\r\n", "REJECTED EXTERNAL\r\nOK " + testGUID + "\r\n", 0, false, true},
		{"uid 1000", "\x00AUTH EXTERNAL 31303030\r\nBEGIN\r\n", "OK " + testGUID + "\r\n", 1000, false, true},
		{"claims another uid", "\x00AUTH EXTERNAL 30\r\n", "REJECTED EXTERNAL\r\n", 1000, false, false},
		{"no nul", "AUTH EXTERNAL 30\r\n", "", 0, false, false},
		{"begin before auth", "\x00BEGIN\r\n", "ERROR\r\n", 0, false, false},
		{"fds refused", "\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n", "DATA\r\nOK " + testGUID + "\r\nERROR fd passing is not supported\r\n", 0, false, true},
		{"other mechanism", "\x00AUTH ANONYMOUS\r\nAUTH EXTERNAL 30\r\nBEGIN\r\n", "REJECTED EXTERNAL\r\nOK " + testGUID + "\r\n", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.NewReader(tc.in + after)
			var out bytes.Buffer
			res, err := ServerHandshake(oneByteReader{in}, &out, tc.uid, testGUID, tc.fds)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !strings.HasPrefix(out.String(), tc.want) {
				t.Errorf("replies %q, want %q", out.String(), tc.want)
			}
			if tc.ok {
				rest, _ := io.ReadAll(in)
				if string(rest) != after {
					t.Errorf("handshake consumed message bytes: %q left", rest)
				}
				if res.UnixFD != strings.Contains(tc.want, "AGREE_UNIX_FD") {
					t.Errorf("UnixFD = %v", res.UnixFD)
				}
			}
		})
	}
}

func TestClientHandshakeAgainstServer(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := ServerHandshake(c2sR, s2cW, 42, testGUID, false)
		done <- err
	}()
	if err := ClientHandshake(s2cR, c2sW, 42); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzSASL feeds arbitrary bytes to the server handshake: it must end
// (success or error) without panicking, never read past a line limit, and
// only succeed after an OK.
func FuzzSASL(f *testing.F) {
	for _, seed := range []string{
		"\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
		"\x00AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
		"\x00AUTH\r\nAUTH EXTERNAL 30\r\nBEGIN\r\n",
		"\x00CANCEL\r\nERROR\r\nDATA 30\r\n",
		"\x00AUTH EXTERNAL zz\r\n",
		"\x00" + strings.Repeat("A", 600) + "\r\n",
		"\x00\xff\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_, err := ServerHandshake(oneByteReader{bytes.NewReader(data)}, &out, 0, testGUID, true)
		if err == nil && !strings.Contains(out.String(), "OK "+testGUID) {
			t.Fatalf("handshake succeeded without OK: %q", out.String())
		}
	})
}
