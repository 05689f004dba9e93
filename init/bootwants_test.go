package pid1

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"vigil/units"
)

// vigil.wants= units are wants of the boot target, in its one
// transaction, as systemd.wants= are in systemd: the target (default
// dependencies) is ordered after them, so when it is reached they have
// started, and the target's Wants list them.
func TestBootWantsJoinTheBootTransaction(t *testing.T) {
	dir := t.TempDir()
	unitDir := filepath.Join(dir, "units")
	os.MkdirAll(unitDir, 0o755)
	os.WriteFile(filepath.Join(unitDir, "extra.service"), []byte("[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/sleep 0.5\"\n"), 0o644)
	type seen struct {
		target, result, extra string
		wants                 []string
	}
	reached := make(chan seen, 1)
	var vm *Manager
	vm, err := Start(context.Background(), Config{
		UnitPaths:  []string{unitDir},
		RuntimeDir: filepath.Join(dir, "run"),
		Wants:      []string{"extra.service", "missing.service"},
		Logf:       t.Logf,
		OnDefaultTarget: func(target, result string) {
			// On the loop: the units may be read.
			s := seen{target: target, result: result}
			if u := vm.Units().Unit("extra.service"); u != nil {
				a, _ := u.Active()
				s.extra = string(a)
			}
			if u := vm.Units().Unit(target); u != nil {
				s.wants = u.Deps(units.Wants)
			}
			reached <- s
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string)
	go func() { done <- vm.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("manager did not stop")
		}
	}()
	select {
	case s := <-reached:
		if s.target != "multi-user.target" || s.result != "done" {
			t.Errorf("default target: %s %s", s.target, s.result)
		}
		if s.extra != "active" {
			t.Errorf("extra.service when the default target was reached: %q, want active (started in the same transaction, target after it)", s.extra)
		}
		if !slices.Contains(s.wants, "extra.service") {
			t.Errorf("multi-user.target wants %q, want extra.service among them", s.wants)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("default target never reported")
	}
}
