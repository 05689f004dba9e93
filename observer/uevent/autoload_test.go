package uevent

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"vigil/init/kmod"
)

// guestKernel is the Debian kernel whose modules are installed on the test
// host (the QEMU guest's kernel); the host's own kernel has no modules.
const guestKernel = "6.1.0-56-amd64"

func guestLoader(t *testing.T) *kmod.Loader {
	t.Helper()
	if _, err := os.Stat("/lib/modules/" + guestKernel + "/modules.alias"); err != nil {
		t.Skipf("modules of %s not installed: %v", guestKernel, err)
	}
	return &kmod.Loader{KernelRelease: guestKernel, KernelCmdline: " "}
}

// A hot-plugged virtio disk and its PCI function resolve, through the real
// modules.alias, to their drivers; loading is recorded, not done (the
// host's kernel cannot load the guest's modules).
func TestAutoloadResolvesWithKmod(t *testing.T) {
	loader := guestLoader(t)
	for file, want := range map[string][]string{
		"kernel-add-pci-02.0_virtio1.raw": {"virtio_blk"},
		"kernel-add-pci-02.0.raw":         {"virtio_pci"},
	} {
		u, err := Parse(readFixture(t, "testdata/captures/"+file))
		if err != nil {
			t.Fatal(err)
		}
		// The captures were coldplug-style writes of bound devices: they
		// carry DRIVER, and a bound device needs no module.
		var asked []string
		record := func(m string) error { asked = append(asked, m); return nil }
		if got, err := Autoload(u, loader.Resolve, record); got != nil || err != nil || asked != nil {
			t.Errorf("%s: bound device autoloaded %v, %v", file, got, err)
		}
		delete(u.Env, "DRIVER") // as the kernel's own "add" comes, before binding
		got, err := Autoload(u, loader.Resolve, record)
		if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(asked, want) {
			t.Errorf("%s: loaded %v (asked %v), %v; want %v", file, got, asked, err, want)
		}
	}
}

func TestAutoloadErrors(t *testing.T) {
	loader := guestLoader(t)
	none := &Uevent{Action: "add", DevPath: "/devices/x", Modalias: "nothing:matches:this", Env: map[string]string{}}
	if got, err := Autoload(none, loader.Resolve, func(string) error { return nil }); got != nil || !errors.Is(err, kmod.ErrNotFound) {
		t.Errorf("unknown alias: %v, %v", got, err)
	}
	virtio := &Uevent{Action: "add", DevPath: "/devices/v", Modalias: "virtio:d00000001v00001AF4", Env: map[string]string{}}
	failure := errors.New("finit_module: function not implemented")
	got, err := Autoload(virtio, loader.Resolve, func(string) error { return failure })
	if got != nil || !errors.Is(err, failure) {
		t.Errorf("failing load: %v, %v", got, err)
	}
	for _, action := range []string{"change", "remove", "bind"} {
		ev := *virtio
		ev.Action = action
		if got, err := Autoload(&ev, loader.Resolve, func(string) error { t.Error("loaded on " + action); return nil }); got != nil || err != nil {
			t.Errorf("%s: %v, %v", action, got, err)
		}
	}
}
