package early

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// The test binary re-executes itself as a helper in fresh namespaces, so
// that mounting, host names and network changes never touch the host.
const helperEnv = "VIGIL_EARLY_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		report, err := runHelper(mode, os.Args[len(os.Args)-1])
		out := os.NewFile(3, "report")
		if err != nil {
			fmt.Fprintln(out, "ERROR", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(out).Encode(report)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(mode, arg string) (any, error) {
	switch mode {
	case "mount":
		return helperMount(arg, false)
	case "mount-container":
		return helperMount(arg, true)
	case "terminal":
		return helperTerminal()
	case "hostname":
		return helperHostname(arg)
	case "loopback":
		return helperLoopback()
	case "machine-id-ro":
		return helperMachineIDReadOnly(arg)
	}
	return nil, fmt.Errorf("unknown helper mode %q", mode)
}

// runInHelper runs this test binary in mode inside new namespaces and
// decodes the JSON report it writes on fd 3 into report.
func runInHelper(t *testing.T, mode, arg string, cloneflags uintptr, report any) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for namespaces")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	w.Close()
	dec := json.NewDecoder(r)
	decodeErr := dec.Decode(report)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	if decodeErr != nil {
		t.Fatalf("helper %s report: %v", mode, decodeErr)
	}
}
