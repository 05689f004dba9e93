package uevent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The captures were recorded on the test host with a raw netlink socket
// while writing to /sys/.../uevent files (see testdata/README).
func TestParseCaptures(t *testing.T) {
	tests := []struct {
		file      string
		want      Uevent
		envChecks map[string]string
	}{
		{"kernel-add-virtual_net_lo.raw", Uevent{Action: "add", DevPath: "/devices/virtual/net/lo", Subsystem: "net", Seqnum: 852},
			map[string]string{"INTERFACE": "lo", "IFINDEX": "1", "SYNTH_UUID": "0"}},
		{"kernel-change-virtual_net_lo.raw", Uevent{Action: "change", DevPath: "/devices/virtual/net/lo", Subsystem: "net", Seqnum: 853}, nil},
		{"kernel-remove-virtual_net_lo.raw", Uevent{Action: "remove", DevPath: "/devices/virtual/net/lo", Subsystem: "net", Seqnum: 862}, nil},
		{"kernel-add-pci-02.0_virtio1_block_vda.raw", Uevent{Action: "add", DevPath: "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
			Subsystem: "block", DevType: "disk", DevName: "vda", Major: 254, Minor: 0, HasDevNum: true, Seqnum: 854},
			map[string]string{"DISKSEQ": "9"}},
		{"kernel-add-pci-02.0.raw", Uevent{Action: "add", DevPath: "/devices/pci0000:00/0000:00:02.0", Subsystem: "pci", Seqnum: 856,
			Modalias: "pci:v00001AF4d00001042sv00001AF4sd00001042bc01sc80i00"},
			map[string]string{"DRIVER": "virtio-pci", "PCI_SLOT_NAME": "0000:00:02.0"}},
		{"kernel-add-pci-02.0_virtio1.raw", Uevent{Action: "add", DevPath: "/devices/pci0000:00/0000:00:02.0/virtio1", Subsystem: "virtio", Seqnum: 857,
			Modalias: "virtio:d00000002v00001AF4"}, nil},
		{"kernel-add-virtual_tty_tty1.raw", Uevent{Action: "add", DevPath: "/devices/virtual/tty/tty1", Subsystem: "tty", DevName: "tty1",
			Major: 4, Minor: 1, HasDevNum: true, Seqnum: 858},
			map[string]string{"SYNTH_UUID": "fe4d7c44-e8a9-4f2e-9c4f-123456789abc", "SYNTH_ARG_PURPOSE": "test"}},
		{"kernel-change-virtual_block_loop0.raw", Uevent{Action: "change", DevPath: "/devices/virtual/block/loop0", Subsystem: "block",
			DevType: "disk", DevName: "loop0", Major: 7, Minor: 0, HasDevNum: true, Seqnum: 861},
			map[string]string{"DISK_MEDIA_CHANGE": "1"}},
		{"kernel-move-virtual_mem_null.raw", Uevent{Action: "move", DevPath: "/devices/virtual/mem/null", Subsystem: "mem", DevName: "null",
			Major: 1, Minor: 3, HasDevNum: true, Seqnum: 864}, map[string]string{"DEVMODE": "0666"}},
		{"kernel-online-system_cpu_cpu0.raw", Uevent{Action: "online", DevPath: "/devices/system/cpu/cpu0", Subsystem: "cpu", Seqnum: 863}, nil},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			seen[tt.file] = true
			msg := readFixture(t, filepath.Join("testdata/captures", tt.file))
			got, err := Parse(msg)
			if err != nil {
				t.Fatal(err)
			}
			env := got.Env
			got.Env = nil
			if got.Subsystem == "cpu" && strings.HasPrefix(got.Modalias, "cpu:type:x86,") {
				tt.want.Modalias = got.Modalias // 700 bytes of CPU features
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
			// Every pair of the message is in Env, and nothing else is.
			pairs := bytes.Split(bytes.TrimRight(msg[bytes.IndexByte(msg, 0)+1:], "\x00"), []byte{0})
			if len(env) != len(pairs) {
				t.Errorf("Env has %d keys, message %d pairs", len(env), len(pairs))
			}
			for _, p := range pairs {
				k, v, _ := strings.Cut(string(p), "=")
				if env[k] != v {
					t.Errorf("Env[%s] = %q, message says %q", k, env[k], v)
				}
			}
			for k, v := range tt.envChecks {
				if env[k] != v {
					t.Errorf("Env[%s] = %q, want %q", k, env[k], v)
				}
			}
			got.Env = env
			again, err := Parse(got.Marshal())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("Marshal round trip: %v\n%+v\n%+v", err, again, got)
			}
		})
	}
	files, _ := filepath.Glob("testdata/captures/*.raw")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("capture %s has no expectations", f)
		}
	}
}

func TestParseMalformedFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/malformed/*.raw")
	if err != nil || len(files) < 10 {
		t.Fatalf("malformed fixtures: %d, %v", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			u, err := Parse(readFixture(t, f))
			if err == nil {
				t.Fatalf("accepted: %+v", u)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	huge := append([]byte("add@/devices/x\x00ACTION=add\x00BIG="), bytes.Repeat([]byte("y"), MaxMessageSize)...)
	if _, err := Parse(huge); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("huge message: %v", err)
	}
	var many bytes.Buffer
	many.WriteString("add@/devices/x\x00")
	for i := 0; i < maxKeys+1; i++ {
		many.WriteString("K" + strings.Repeat("A", i%20) + string(rune('A'+i%26)) + string(rune('A'+i/26%26)) + "=1\x00")
	}
	if _, err := Parse(many.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d keys: %v", maxKeys+1, err)
	}
	// Unknown keys, a missing final NUL and doubled NULs are fine.
	u, err := Parse([]byte("add@/devices/x\x00\x00NEW_KEY_2030=v\x00LAST=1"))
	if err != nil || u.Env["NEW_KEY_2030"] != "v" || u.Env["LAST"] != "1" || u.Action != "add" {
		t.Errorf("lenient parse: %+v, %v", u, err)
	}
}

// libudevMessage frames properties as udevd sends them to libudev monitors.
func libudevMessage(props ...string) []byte {
	body := []byte(strings.Join(props, "\x00") + "\x00")
	hdr := make([]byte, libudevHeaderSize)
	copy(hdr, libudevPrefix)
	binary.BigEndian.PutUint32(hdr[8:], libudevMagic)
	binary.NativeEndian.PutUint32(hdr[12:], libudevHeaderSize)
	binary.NativeEndian.PutUint32(hdr[16:], libudevHeaderSize)
	binary.NativeEndian.PutUint32(hdr[20:], uint32(len(body)))
	return append(hdr, body...)
}

func TestParseLibudev(t *testing.T) {
	msg := libudevMessage("ACTION=add", "DEVPATH=/devices/virtual/block/loop1", "SUBSYSTEM=block", "DEVNAME=/dev/loop1",
		"DEVTYPE=disk", "MAJOR=7", "MINOR=1", "SEQNUM=99", "ID_FS_TYPE=ext4", "TAGS=:systemd:", "USEC_INITIALIZED=123")
	u, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !u.FromUdev || u.Action != "add" || u.DevName != "/dev/loop1" || u.DevNode() != "/dev/loop1" || u.Minor != 1 || u.Env["ID_FS_TYPE"] != "ext4" {
		t.Errorf("libudev message: %+v", u)
	}
	if _, err := Parse(libudevMessage("DEVPATH=/devices/x")); !errors.Is(err, ErrMalformed) {
		t.Errorf("libudev message without ACTION: %v", err)
	}
	kernel, err := Parse(readFixture(t, "testdata/captures/kernel-add-virtual_net_lo.raw"))
	if err != nil || kernel.FromUdev {
		t.Errorf("kernel message taken for udev's: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/captures", "testdata/malformed"} {
		files, _ := filepath.Glob(dir + "/*.raw")
		for _, file := range files {
			f.Add(readFixture(f, file))
		}
	}
	f.Add(libudevMessage("ACTION=change", "DEVPATH=/devices/x", "SEQNUM=1"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		u, err := Parse(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !validAction(u.Action) || !strings.HasPrefix(u.DevPath, "/") || u.Env["ACTION"] != u.Action || u.Env["DEVPATH"] != u.DevPath {
			t.Fatalf("accepted inconsistent uevent %+v", u)
		}
		if u.FromUdev {
			return
		}
		again, err := Parse(u.Marshal())
		if err != nil || !reflect.DeepEqual(again, u) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, again, u)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, file := range []string{"kernel-add-pci-02.0_virtio1_block_vda.raw", "kernel-online-system_cpu_cpu0.raw"} {
		msg := readFixture(b, "testdata/captures/"+file)
		b.Run(strings.TrimSuffix(file, ".raw"), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
