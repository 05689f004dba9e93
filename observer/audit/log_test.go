package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditRecordRoundTrip(t *testing.T) {
	recs := []Record{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), PID: 42, Exe: "/bin/sh", UID: "0", Unit: "foo.service", Path: "/tmp/evil", Access: "exec", Rule: "no-tmp-exec", Verdict: "deny", Mode: "enforce", Via: "loop"},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), PID: 1, Path: "/tmp/a b=\"c\"\n\\ é", Access: "open", Rule: "default", Logged: "a,b", Verdict: "allow", Mode: "permissive"},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Path: "", Rule: "x", Verdict: "allow"},
	}
	for _, r := range recs {
		line := FormatRecord(r)
		if strings.ContainsAny(line, "\n") {
			t.Fatalf("line has a newline: %q", line)
		}
		got, err := ParseRecord(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !got.Time.Equal(r.Time) {
			t.Fatalf("time %v, want %v", got.Time, r.Time)
		}
		got.Time = r.Time
		if got != r {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", line, got, r)
		}
	}
	if !strings.Contains(FormatRecord(recs[0]), "pid=42 exe=/bin/sh uid=0 unit=foo.service path=/tmp/evil access=exec rule=no-tmp-exec verdict=deny mode=enforce") {
		t.Fatalf("line: %s", FormatRecord(recs[0]))
	}
	for _, bad := range []string{"", "garbage", "pid=x", "time=yesterday", `path="open`, `path="a"b`} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
}

func FuzzAuditParseRecord(f *testing.F) {
	f.Add(FormatRecord(Record{Time: time.Unix(1, 0), PID: 3, Path: "/a b", Rule: "r", Verdict: "deny"}))
	f.Add(`time=2026-01-02T03:04:05Z pid=1 path="\x00" rule=x`)
	f.Add(`a=b c="d" e=`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRecord(line)
		if err != nil {
			return
		}
		// What parsed survives formatting and parsing again.
		again, err := ParseRecord(FormatRecord(r))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", FormatRecord(r), err)
		}
		if !again.Time.Equal(r.Time) && !r.Time.IsZero() {
			t.Fatalf("time changed: %v -> %v", r.Time, again.Time)
		}
		again.Time = r.Time
		if again.Path != r.Path || again.Rule != r.Rule || again.Unit != r.Unit || again.Verdict != r.Verdict || again.PID != r.PID {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
	})
}

func TestAuditLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.log")
	w := startLogWriter(path, 4096, 2, t.Logf)
	for i := range 200 {
		w.Write(Record{Time: time.Now(), PID: i, Path: fmt.Sprintf("/tmp/file-%03d", i), Access: "exec", Rule: "r", Verdict: "deny", Mode: "enforce", Unit: fmt.Sprintf("u%d.service", i%2)})
	}
	w.Close()
	if w.dropped.Load() != 0 || w.written.Load() != 200 || w.rotations.Load() == 0 {
		t.Fatalf("written %d dropped %d rotations %d", w.written.Load(), w.dropped.Load(), w.rotations.Load())
	}
	for _, name := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 4096 {
			t.Errorf("%s has %d bytes, above the limit", name, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("%s.3 kept beyond log-keep", path)
	}
	recs, bad, err := ReadRecords(path, 2, 5, RecordFilter{Unit: "u1.service"})
	if err != nil || bad != 0 {
		t.Fatalf("read: %v (bad %d)", err, bad)
	}
	if len(recs) != 5 || recs[4].PID != 199 || recs[0].PID != 191 {
		t.Fatalf("last 5 of u1: %+v", recs)
	}
	all, _, _ := ReadRecords(path, 2, 0, RecordFilter{})
	for i := 1; i < len(all); i++ {
		if all[i].PID != all[i-1].PID+1 {
			t.Fatalf("records out of order across rotated files: %d after %d", all[i].PID, all[i-1].PID)
		}
	}
	if len(all) == 200 || len(all) < 50 {
		t.Fatalf("kept %d records: expected the oldest to be rotated away", len(all))
	}
}

func TestAuditLogNeverBlocks(t *testing.T) {
	// A log that cannot be opened: every record is dropped and counted,
	// and Write still returns at once.
	w := startLogWriter("/proc/no/such/dir/audit.log", 1<<20, 1, func(string, ...any) {})
	start := time.Now()
	for i := range 3 * logBuffer {
		w.Write(Record{PID: i})
	}
	w.Close()
	if w.written.Load() != 0 || w.dropped.Load() != 3*logBuffer {
		t.Fatalf("written %d dropped %d", w.written.Load(), w.dropped.Load())
	}
	t.Logf("%d writes in %v", 3*logBuffer, time.Since(start))
}

func TestAuditLogFollow(t *testing.T) {
	w := startLogWriter(filepath.Join(t.TempDir(), "audit.log"), 1<<20, 1, t.Logf)
	defer w.Close()
	ch, stop := w.Follow(RecordFilter{Verdict: "deny"})
	defer stop()
	w.Write(Record{PID: 1, Verdict: "allow"})
	w.Write(Record{PID: 2, Verdict: "deny"})
	select {
	case r := <-ch:
		if r.PID != 2 {
			t.Fatalf("follower got %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no record for the follower")
	}
}

func BenchmarkAuditFormatRecord(b *testing.B) {
	r := Record{Time: time.Now(), PID: 4242, Exe: "/usr/bin/python3", UID: "1000", Unit: "web.service", Path: "/tmp/evil", Access: "exec", Rule: "no-tmp-exec", Verdict: "deny", Mode: "enforce", Via: "loop"}
	b.ReportAllocs()
	for b.Loop() {
		FormatRecord(r)
	}
}
