package loopdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needLoop(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := os.Stat(ControlPath); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
}

// waitDetached waits until the device has no backing file any more.
func waitDetached(t *testing.T, d *Device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for BackingFile("/sys", d.Path) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("%s still attached to %s after its last user went", d.Path, BackingFile("/sys", d.Path))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttachAndAutoclear attaches an image file, reads it through the
// device, and checks that closing the only descriptor detaches it.
func TestAttachAndAutoclear(t *testing.T) {
	needLoop(t)
	img := filepath.Join(t.TempDir(), "image")
	data := make([]byte, 1<<20)
	copy(data[4096:], "vigil loop test")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Attach(img, Options{Offset: 4096, SizeLimit: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := BackingFile("/sys", d.Path); got != img {
		t.Errorf("backing file of %s = %q, want %q", d.Path, got, img)
	}
	buf := make([]byte, 15)
	if _, err := d.f.ReadAt(buf, 0); err != nil || string(buf) != "vigil loop test" {
		t.Errorf("read at 0 of the device (offset 4096 in the file) = %q, %v", buf, err)
	}
	size, _ := d.f.Seek(0, 2)
	if size != 512<<10 {
		t.Errorf("device size %d, want the size limit %d", size, 512<<10)
	}
	flags, _ := os.ReadFile("/sys/block/" + filepath.Base(d.Path) + "/loop/autoclear")
	if strings.TrimSpace(string(flags)) != "1" {
		t.Errorf("autoclear = %q, want 1", flags)
	}
	d.Close()
	waitDetached(t, d)
}

func TestAttachReadOnly(t *testing.T) {
	needLoop(t)
	img := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(img, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Attach(img, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close(); waitDetached(t, d) }()
	ro, _ := os.ReadFile("/sys/block/" + filepath.Base(d.Path) + "/ro")
	if strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("ro = %q, want 1", ro)
	}
}

func TestAttachRefusesNonFiles(t *testing.T) {
	needLoop(t)
	for _, p := range []string{t.TempDir(), "/nonexistent/vigil-image"} {
		if d, err := Attach(p, Options{}); err == nil {
			d.Close()
			t.Errorf("Attach(%s) accepted", p)
		} else if !strings.Contains(err.Error(), "loop:") {
			t.Errorf("Attach(%s): error %v does not say loop", p, err)
		}
	}
	img := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(img, Options{DevDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "loop module") {
		t.Errorf("without loop-control: %v", err)
	}
}

// BenchmarkAttachDetach is one loop device attached to a file and left
// to autoclear: what a loop mount adds to the mount call.
func BenchmarkAttachDetach(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("loop devices need root")
	}
	if _, err := os.Stat(ControlPath); err != nil {
		b.Skipf("no loop driver: %v", err)
	}
	img := filepath.Join(b.TempDir(), "image")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d, err := Attach(img, Options{})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
