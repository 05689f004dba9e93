package uevent

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// FuzzSynthesise feeds a device's uevent file (what coldplug reads from
// /sys) to synthesise: it must not panic, must keep the devpath and action
// it was given, and what it accepts must be an event the netlink parser
// accepts too, unchanged, so a coldplugged device looks exactly like a
// hot-plugged one to observers.
func FuzzSynthesise(f *testing.F) {
	f.Add("/devices/virtual/block/vdb", "block", []byte("MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\nDISKSEQ=2\n"))
	f.Add("/devices/pci0000:00/0000:00:02.0/virtio1", "virtio", []byte("DRIVER=virtio_blk\nMODALIAS=virtio:d00000002v00001AF4\n"))
	f.Add("/devices/virtual/net/lo", "", []byte("INTERFACE=lo\nIFINDEX=1\n\n"))
	f.Add("/devices/x", "x", []byte("MAJOR=1\n"))
	f.Add("/devices/x", "x", []byte("=1\n"))
	f.Add("/devices/x", "x", []byte("ACTION=remove\nDEVPATH=/elsewhere\nSEQNUM=7\n"))
	f.Add("/devices/../x", "", []byte("DEVNAME=../../etc/passwd\n"))
	f.Add("/devices/x", "x", []byte("A B=c\nK=v\x00w\n"))
	f.Add("/devices/x", "x", []byte("A B=c\n"))
	var many bytes.Buffer
	for i := range maxKeys - 1 {
		fmt.Fprintf(&many, "K%d=\n", i)
	}
	f.Add("/devices/x", "x", many.Bytes())
	f.Fuzz(func(t *testing.T, devpath, subsystem string, content []byte) {
		u, err := synthesise(devpath, subsystem, content)
		if err != nil {
			if u != nil {
				t.Fatalf("an event and an error: %+v, %v", u, err)
			}
			return
		}
		if u.Action != "add" || u.DevPath != devpath || u.Env["SYNTH_UUID"] != "0" {
			t.Fatalf("synthesised %+v for %q", u, devpath)
		}
		if subsystem != "" && u.Subsystem != subsystem {
			t.Fatalf("subsystem %q, want %q", u.Subsystem, subsystem)
		}
		msg := u.Marshal()
		if bytes.Contains(content, []byte{0}) || bytes.ContainsRune([]byte(devpath+subsystem), 0) || len(msg) > MaxMessageSize {
			return // NULs cannot travel in a netlink message
		}
		again, err := Parse(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			t.Fatalf("coldplug accepted what the netlink parser refuses: %v\n%.300q", err, content)
		}
		if !reflect.DeepEqual(again, u) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", again, u)
		}
	})
}
