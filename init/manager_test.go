package pid1

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/units/exec"
)

func TestMain(m *testing.M) {
	if exec.IsTrampoline(os.Args[0]) {
		exec.TrampolineMain()
		return
	}
	os.Exit(m.Run())
}

func TestDefaultTargetCallbackAndOrderedExit(t *testing.T) {
	dir := t.TempDir()
	units := filepath.Join(dir, "units")
	os.MkdirAll(filepath.Join(units, "multi-user.target.wants"), 0o755)
	os.WriteFile(filepath.Join(units, "svc.service"), []byte("[service]\nexec-start = [\"/bin/sh\", \"-c\", \"echo $$$$ > "+dir+"/pid; exec sleep 60\"]\n"), 0o644)
	os.Symlink("../svc.service", filepath.Join(units, "multi-user.target.wants", "svc.service"))
	reached := make(chan string, 1)
	vm, err := Start(context.Background(), Config{
		UnitPaths:  []string{units},
		RuntimeDir: filepath.Join(dir, "run"),
		Logf:       t.Logf,
		OnDefaultTarget: func(target, result string) {
			reached <- target + " " + result
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string)
	go func() { done <- vm.Run(ctx) }()
	select {
	case got := <-reached:
		if got != "multi-user.target done" {
			t.Errorf("default target callback: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("default target never reported")
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0 && time.Now().Before(deadline); {
		data, _ := os.ReadFile(filepath.Join(dir, "pid"))
		pid = atoi(string(data))
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("service never started")
	}
	cancel()
	select {
	case action := <-done:
		if action != "exit" {
			t.Errorf("action %q, want exit", action)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("manager did not stop")
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		t.Errorf("service process %d outlived the manager", pid)
	}
}
