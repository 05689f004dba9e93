package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The parser reads the same kernel files on the host as the bench script
// prints in the guest.
func TestParseMemoryLinesOfThisProcess(t *testing.T) {
	var lines []string
	for _, f := range []string{"/proc/self/smaps_rollup", "/proc/self/status"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("%v", err)
		}
		lines = append(lines, strings.Split(string(data), "\n")...)
	}
	mem, err := ParseMemoryLines(lines)
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary is resident for at least a megabyte, and Pss never
	// exceeds Rss.
	if mem["Rss"] < 1024 || mem["Pss"] > mem["Rss"] || mem["VmHWM"] < mem["VmRSS"]/2 {
		t.Errorf("implausible figures: %v", mem)
	}
	if _, err := ParseMemoryLines(lines[:1]); err == nil {
		t.Error("accepted output without Pss, VmRSS and VmHWM")
	}
}

func TestMedianAndSummarize(t *testing.T) {
	if got := Median([]int{5, 1, 3}); got != 3 {
		t.Errorf("median of 5 1 3 = %d", got)
	}
	if got := Median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of 4 1 3 2 = %d", got)
	}
	if got := Median[int](nil); got != 0 {
		t.Errorf("median of nothing = %d", got)
	}
	s := Summarize([]BootSample{
		{TargetUptime: 3 * time.Second, RssKB: 300},
		{TargetUptime: 1 * time.Second, RssKB: 100},
		{TargetUptime: 2 * time.Second, RssKB: 200},
	})
	if s.N != 3 || s.TargetUptime != [3]time.Duration{2 * time.Second, time.Second, 3 * time.Second} || s.RssKB != [3]int{200, 100, 300} {
		t.Errorf("summary %+v", s)
	}
}

func TestWriteExtraUnits(t *testing.T) {
	dir := t.TempDir()
	if err := WriteExtraUnits(dir, 50); err != nil {
		t.Fatal(err)
	}
	links, err := os.ReadDir(filepath.Join(dir, "multi-user.target.wants"))
	if err != nil || len(links) != 50 {
		t.Fatalf("%d wants links (%v)", len(links), err)
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(dir, "multi-user.target.wants", l.Name())); err != nil {
			t.Errorf("dangling link: %v", err)
		}
	}
	if err := WriteExtraUnits(dir, 1); err == nil {
		t.Error("writing over existing links succeeded")
	}
}
