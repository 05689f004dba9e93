package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"vigil/units/api"
)

// topCommand is `initctl top`: units by CPU, memory or tasks, from their
// cgroups' accounting, refreshed live on a terminal.
func topCommand() *command {
	return &command{Name: "top", Summary: "Show units by CPU, memory or tasks (their cgroups' accounting), refreshed live",
		Flags: []flagSpec{
			{Long: "order", Value: "KEY", Help: "sort by cpu (default), memory or tasks"},
			{Long: "iterations", Short: 'n', Value: "N", Help: "refresh N times, then exit (default: until interrupted on a terminal, 1 otherwise)"},
			{Long: "delay", Short: 'd', Value: "SECONDS", Help: "time between refreshes (default 1)"},
		}, MaxArgs: 0, Run: (*env).runTop}
}

// topRow is one unit's line in top.
type topRow struct {
	Unit       string   `json:"unit"`
	Tasks      *uint64  `json:"tasks,omitempty"`
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	CPUNSec    *uint64  `json:"cpu_usage_nsec,omitempty"`
	Memory     *uint64  `json:"memory,omitempty"`
}

func (e *env) runTop(p *parsed) int {
	order := p.str("order", "cpu")
	if order != "cpu" && order != "memory" && order != "tasks" {
		fmt.Fprintf(e.stderr, "%s: --order: expected cpu, memory or tasks, got %q\n", e.program, order)
		return exitUsage
	}
	iterations := 1
	if e.tty && !e.json {
		iterations = 0
	}
	iterations, err := p.int("iterations", iterations)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", e.program, err)
		return exitUsage
	}
	delay := time.Second
	if v := p.str("delay", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			fmt.Fprintf(e.stderr, "%s: --delay: %q is not a positive number of seconds\n", e.program, v)
			return exitUsage
		}
		delay = time.Duration(f * float64(time.Second))
	}
	prevCPU := map[string]uint64{}
	var prevAt time.Time
	for i := 0; iterations == 0 || i < iterations; i++ {
		if i > 0 {
			select {
			case <-e.ctx.Done():
				return exitOK
			case <-time.After(delay):
			}
		}
		rows, err := e.topSample()
		if err != nil {
			return e.fail("read unit accounting", err)
		}
		now := time.Now()
		for j := range rows {
			r := &rows[j]
			if r.CPUNSec == nil {
				continue
			}
			if before, ok := prevCPU[r.Unit]; ok && !prevAt.IsZero() && *r.CPUNSec >= before {
				pct := float64(*r.CPUNSec-before) / float64(now.Sub(prevAt).Nanoseconds()) * 100
				r.CPUPercent = &pct
			}
			prevCPU[r.Unit] = *r.CPUNSec
		}
		prevAt = now
		sortTop(rows, order)
		if e.json {
			e.printJSON(nonNil(rows))
			continue
		}
		e.printTop(rows, i > 0)
	}
	return exitOK
}

// topSample reads the accounting of every active unit with a cgroup.
func (e *env) topSample() ([]topRow, error) {
	var units []api.UnitSummary
	if err := e.call(api.MethodList, api.ListArgs{}, &units, nil); err != nil {
		return nil, err
	}
	var rows []topRow
	for _, u := range units {
		var st api.UnitStatus
		if err := e.call(api.MethodStatus, api.UnitArgs{Unit: u.Name}, &st, nil); err != nil {
			if notFound(err) {
				continue
			}
			return nil, err
		}
		if st.ControlGroup == "" {
			continue
		}
		rows = append(rows, topRow{Unit: u.Name, Tasks: st.TasksCurrent, CPUNSec: st.CPUUsageNSec, Memory: st.MemoryCurrent})
	}
	return rows, nil
}

// sortTop orders rows by key, largest first, unknown values last, then by
// name so the order is stable between refreshes.
func sortTop(rows []topRow, key string) {
	val := func(r topRow) (float64, bool) {
		switch key {
		case "memory":
			if r.Memory != nil {
				return float64(*r.Memory), true
			}
		case "tasks":
			if r.Tasks != nil {
				return float64(*r.Tasks), true
			}
		default:
			if r.CPUPercent != nil {
				return *r.CPUPercent, true
			}
			if r.CPUNSec != nil {
				// First sample: order by time used so far.
				return float64(*r.CPUNSec) / 1e12, true
			}
		}
		return 0, false
	}
	sort.SliceStable(rows, func(a, b int) bool {
		va, oka := val(rows[a])
		vb, okb := val(rows[b])
		if oka != okb {
			return oka
		}
		if va != vb {
			return va > vb
		}
		return rows[a].Unit < rows[b].Unit
	})
}

func (e *env) printTop(rows []topRow, again bool) {
	var b strings.Builder
	if e.tty {
		b.WriteString("\x1b[H\x1b[2J") // home and clear: a live screen
	} else if again {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%-40s %7s %7s %10s %12s\n", "UNIT", "TASKS", "%CPU", "MEMORY", "CPU TIME")
	dash := "-"
	for _, r := range rows {
		tasks, cpu, mem, total := dash, dash, dash, dash
		if r.Tasks != nil {
			tasks = strconv.FormatUint(*r.Tasks, 10)
		}
		if r.CPUPercent != nil {
			cpu = strconv.FormatFloat(*r.CPUPercent, 'f', 1, 64)
		}
		if r.Memory != nil {
			mem = formatBytes(*r.Memory)
		}
		if r.CPUNSec != nil {
			total = formatCPU(*r.CPUNSec)
		}
		name := r.Unit
		if len(name) > 40 {
			name = name[:39] + "…"
		}
		fmt.Fprintf(&b, "%-40s %7s %7s %10s %12s\n", name, tasks, cpu, mem, total)
	}
	fmt.Fprint(e.stdout, b.String())
}
