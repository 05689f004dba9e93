package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"vigil/qemu"
)

func TestBenchFlagsAreChecked(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"bench", "--smp", "1,x"},
		{"bench", "--extra-units", "-5"},
		{"bench", "--rounds", "0"},
	} {
		stdout.Reset()
		stderr.Reset()
		if status := run(args, &stdout, &stderr); status != 2 {
			t.Errorf("%q: status %d, want 2 (usage)\n%s", args, status, stderr.String())
		}
	}
	if got, err := parseIntList("smp", "1, 2"); err != nil || len(got) != 2 || got[1] != 2 {
		t.Errorf("parseIntList(\"1, 2\") = %v, %v", got, err)
	}
}

func TestBenchTable(t *testing.T) {
	configs := []*benchConfig{
		{extraUnits: 0, smp: 1, samples: []qemu.BootSample{{TargetUptime: 3 * time.Second, RssKB: 5000}, {TargetUptime: time.Second, RssKB: 4000}, {TargetUptime: 2 * time.Second, RssKB: 4500}}},
		{extraUnits: 50, smp: 2, samples: []qemu.BootSample{{TargetUptime: 4 * time.Second, Poweroff: 300 * time.Millisecond}}},
	}
	var out bytes.Buffer
	writeBenchTable(&out, configs)
	text := out.String()
	for _, want := range []string{
		"| figure | default image, -smp 1 | +50 units, -smp 2 |",
		"| guest uptime at the default target, s | **2.00** (1.00–3.00) | **4.00** (4.00–4.00) |",
		"| PID 1 Rss, kB (smaps_rollup) | 4500 (4000–5000) | 0 (0–0) |",
		"| host wall, poweroff request → QEMU exit, s | **0.00** (0.00–0.00) | **0.30** (0.30–0.30) |",
		"| boots | 3 | 1 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}
