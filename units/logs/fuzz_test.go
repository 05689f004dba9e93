package logs

import (
	"bytes"
	"os"
	"testing"
	"time"
	"unicode/utf8"
)

func splitAll(max int, data []byte, cuts []int) []string {
	s := lineSplitter{max: max}
	var out []string
	emit := func(b []byte) { out = append(out, string(b)) }
	prev := 0
	for _, c := range cuts {
		if c > prev && c < len(data) {
			s.feed(data[prev:c], emit)
			prev = c
		}
	}
	s.feed(data[prev:], emit)
	s.flush(emit)
	return out
}

func TestLineSplitter(t *testing.T) {
	got := splitAll(4, []byte("ab\ncdefgh\r\n\n\xff\xfe\xfd\xfcX"), nil)
	want := []string{"ab", "cdef", "gh", "", "\xff\xfe\xfd\xfc", "X"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// A line of exactly max bytes is one line, not a line and an empty one.
	if got := splitAll(4, []byte("abcd\nefgh"), []int{2, 4}); len(got) != 2 {
		t.Errorf("exact-length lines: %q", got)
	}
}

// FuzzLineSplitter feeds the same bytes whole and in pieces: the lines must
// be the same, none longer than the limit, none holding a newline, and
// together they must be the input without its line ends; valid UTF-8 stays
// valid.
func FuzzLineSplitter(f *testing.F) {
	f.Add([]byte("one\ntwo\r\nthree"), 3, 1, 5)
	f.Add([]byte("ééééé\n\xff\xfe"), 2, 0, 3)
	f.Add(bytes.Repeat([]byte("x"), 100), 7, 50, 99)
	// A three-byte rune straddling the cut, its tail arriving in a later
	// read: the cut must not depend on whether the tail is there yet.
	f.Add([]byte("0000000\xe8\x80\x80"), 8, 9, 0)
	f.Fuzz(func(t *testing.T, data []byte, max, cut1, cut2 int) {
		if max < 4 || max > 1<<16 {
			max = 4 + (max&0xff+0xff)%64
		}
		whole := splitAll(max, data, nil)
		pieces := splitAll(max, data, []int{cut1, cut2})
		if len(whole) != len(pieces) {
			t.Fatalf("whole %q vs pieces %q", whole, pieces)
		}
		var joined []byte
		for i, l := range whole {
			if l != pieces[i] {
				t.Fatalf("line %d: %q vs %q", i, l, pieces[i])
			}
			if len(l) > max || bytes.IndexByte([]byte(l), '\n') >= 0 {
				t.Fatalf("bad line %q (max %d)", l, max)
			}
			if utf8.Valid(data) && !utf8.ValidString(l) {
				t.Fatalf("valid input cut into invalid line %q", l)
			}
			joined = append(joined, l...)
		}
		strip := func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\n"), nil), []byte("\r"), nil)
		}
		if !bytes.Equal(strip(joined), strip(data)) {
			t.Fatalf("content changed: %q -> %q", data, joined)
		}
	})
}

// FuzzParseRecord: log files are outside input. Nothing panics, and what we
// write we read back.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("2024-01-02T03:04:05.000000006Z\tstdout\t42\thello\tworld"), "stderr", 7, "text")
	f.Add([]byte("garbage"), "", -1, "\xff")
	f.Fuzz(func(t *testing.T, rec []byte, stream string, pid int, text string) {
		parseRecord(rec, "u")
		readRecords(bytes.NewReader(rec), "u", nil)
		if pid < 0 || bytes.ContainsAny([]byte(text), "\n") {
			return
		}
		in := Line{Time: time.Unix(1700000000, 123456789).UTC(), Unit: "u", Stream: stream, PID: pid, Text: text}
		b := appendRecord(nil, in)
		out, ok := parseRecord(b[:len(b)-1], "u")
		if !ok || !out.Time.Equal(in.Time) || out.PID != pid || out.Text != text || out.Stream != sanitizeStream(stream) {
			t.Fatalf("round trip %+v -> %q -> %+v", in, b, out)
		}
	})
}

// BenchmarkCapture measures lines per second through a real pipe into the
// ring and, in the disk case, the file.
func BenchmarkCapture(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 79)
	line = append(line, '\n')
	block := bytes.Repeat(line, 64)
	for _, mode := range []string{"memory", "disk"} {
		b.Run(mode, func(b *testing.B) {
			dir := ""
			if mode == "disk" {
				dir = b.TempDir()
			}
			s, _ := Open(dir, Options{MaxFileSize: 16 << 20})
			defer s.Close()
			r, w, _ := os.Pipe()
			done := s.Capture("bench.service", 1, StreamStdout, r)
			b.SetBytes(int64(len(block)))
			b.ResetTimer()
			for range b.N {
				w.Write(block)
			}
			w.Close()
			<-done
			b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkAppendPerLine is the cost of one line in its own write(2), the
// quiet-service case.
func BenchmarkAppendPerLine(b *testing.B) {
	s, _ := Open(b.TempDir(), Options{MaxFileSize: 16 << 20})
	defer s.Close()
	for b.Loop() {
		s.Append("bench.service", "", "a line of about forty bytes of text....")
	}
}
