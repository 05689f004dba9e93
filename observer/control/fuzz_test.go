package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzDecodeCall feeds arbitrary bytes through the server's framing and call
// decoder: nothing may panic, every frame is bounded, and a decoded call has
// a method and arguments that are valid JSON.
func FuzzDecodeCall(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"method":"list","args":{"all":true}}` + "\n",
		`{"id":2,"method":"status","args":{"unit":"a.service"}}` + "\n" + `{"id":3,"method":"ping"}`,
		`{"id":18446744073709551615,"method":"x","args":null}`,
		`{"id":-1,"method":"x"}`,
		`{"id":1.5,"method":"x"}`,
		`{"method":"x","args":[1,2,{"a":"\u0000"}]}`,
		`{"id":1,"method":"x"} {"id":2}`,
		`not json`, "", "\n\n\n", "{", `{"id":"1"}`, "\xff\xfe", `{"id":1,"method":"` + "\u2603" + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 256
		r := NewFrameReader(iotest.OneByteReader(bytes.NewReader(data)), max)
		whole := NewFrameReader(bytes.NewReader(data), max)
		for {
			line, err := r.Next()
			same, err2 := whole.Next()
			if !bytes.Equal(line, same) || !errors.Is(err, err2) && !(err != nil && err2 != nil) {
				t.Fatalf("framing depends on read sizes: %q/%v vs %q/%v", line, err, same, err2)
			}
			if errors.Is(err, ErrFrameTooLarge) {
				return
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(line) > max {
				t.Fatalf("frame of %d bytes passed a %d limit", len(line), max)
			}
			call, err := DecodeCall(line)
			if err != nil {
				continue
			}
			if call.Method == "" {
				t.Fatalf("decoded call without a method from %q", line)
			}
			if call.Args != nil && !json.Valid(call.Args) {
				t.Fatalf("invalid args %q from %q", call.Args, line)
			}
		}
	})
}

// FuzzDecodeFrame checks the client's side: a decoded frame is exactly one
// of progress, result and error, and re-encodes to something that decodes
// the same way.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"progress":{"state":"running"}}`,
		`{"id":1,"result":null}`,
		`{"id":1,"result":[1,2],"dropped":3}`,
		`{"id":1,"error":{"code":5,"message":"access denied"}}`,
		`{"id":1,"error":null}`,
		`{"id":1,"result":1,"error":{"code":1,"message":"both"}}`,
		`{}`, `[]`, `garbage`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data)
		if err != nil {
			return
		}
		if !fr.Final() && fr.Progress == nil {
			t.Fatalf("frame with nothing in it: %q", data)
		}
		again, err := DecodeFrame(bytes.TrimSuffix(encodeFrame(fr), []byte("\n")))
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v (from %q)", err, data)
		}
		if again.Final() != fr.Final() || again.ID != fr.ID {
			t.Fatalf("round trip changed the frame: %+v vs %+v", again, fr)
		}
	})
}
