package fanotify

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func rawRecord(eventLen uint32, vers uint8, metaLen uint16, mask uint64, fd, pid int32) []byte {
	b := make([]byte, metadataLen)
	binary.NativeEndian.PutUint32(b[0:], eventLen)
	b[4] = vers
	binary.NativeEndian.PutUint16(b[6:], metaLen)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], uint32(fd))
	binary.NativeEndian.PutUint32(b[20:], uint32(pid))
	return b
}

func TestParseRecords(t *testing.T) {
	good := rawRecord(metadataLen, unix.FANOTIFY_METADATA_VERSION, metadataLen, unix.FAN_OPEN_PERM, 7, 42)
	// A record with 8 bytes of information appended, as later kernels may.
	long := append(rawRecord(metadataLen+8, unix.FANOTIFY_METADATA_VERSION, metadataLen, unix.FAN_OPEN_EXEC_PERM, 8, 43), make([]byte, 8)...)
	overflow := rawRecord(metadataLen, unix.FANOTIFY_METADATA_VERSION, metadataLen, unix.FAN_Q_OVERFLOW, unix.FAN_NOFD, 0)
	buf := append(append(append([]byte{}, good...), long...), overflow...)
	recs, err := parseRecords(buf, nil)
	if err != nil || len(recs) != 3 {
		t.Fatalf("parse: %v, %v", recs, err)
	}
	if recs[0] != (record{Mask: unix.FAN_OPEN_PERM, FD: 7, PID: 42}) || recs[1].FD != 8 || recs[2].FD != unix.FAN_NOFD {
		t.Fatalf("records %+v", recs)
	}
	for name, bad := range map[string][]byte{
		"short":        good[:10],
		"version":      rawRecord(metadataLen, 2, metadataLen, 0, 1, 1),
		"past the end": rawRecord(metadataLen+1, unix.FANOTIFY_METADATA_VERSION, metadataLen, 0, 1, 1),
		"zero length":  rawRecord(0, unix.FANOTIFY_METADATA_VERSION, metadataLen, 0, 1, 1),
		"small meta":   rawRecord(metadataLen, unix.FANOTIFY_METADATA_VERSION, 4, 0, 1, 1),
	} {
		recs, err := parseRecords(append(append([]byte{}, good...), bad...), nil)
		if err == nil || len(recs) != 1 {
			t.Errorf("%s: %v, %v; want the good record and an error", name, recs, err)
		}
	}
}

func FuzzParseRecords(f *testing.F) {
	f.Add(rawRecord(metadataLen, unix.FANOTIFY_METADATA_VERSION, metadataLen, unix.FAN_OPEN_PERM, 7, 42))
	f.Add(append(rawRecord(metadataLen+8, unix.FANOTIFY_METADATA_VERSION, metadataLen, unix.FAN_ACCESS_PERM, 3, 1), make([]byte, 8)...))
	f.Add(rawRecord(0, unix.FANOTIFY_METADATA_VERSION, metadataLen, 0, 0, 0))
	f.Add(rawRecord(1<<31, 3, 0xffff, ^uint64(0), -1, -1))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseRecords(data, nil)
		if err == nil && len(data) > 0 && len(recs) == 0 {
			t.Fatalf("no error and no record from %d bytes", len(data))
		}
		if len(recs)*metadataLen > len(data) {
			t.Fatalf("%d records from %d bytes", len(recs), len(data))
		}
	})
}

func TestParseProc(t *testing.T) {
	ppid, comm, ok := parseStatPPID([]byte("123 (my (odd) prog) S 77 123 123 0 -1"))
	if !ok || ppid != 77 || comm != "my (odd) prog" {
		t.Fatalf("stat: %d %q %v", ppid, comm, ok)
	}
	if uid := parseStatusUID([]byte("Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t0\n")); uid != "1000" {
		t.Fatalf("uid %q", uid)
	}
	if cg := parseCgroup2([]byte("1:name=systemd:/x\n0::/system.slice/foo.service\n")); cg != "/system.slice/foo.service" {
		t.Fatalf("cgroup %q", cg)
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("123 (cat) S 1 123 123 0 -1"))
	f.Add([]byte("Uid:\t0\t0\t0\t0\n"))
	f.Add([]byte("0::/init.scope\n"))
	f.Add([]byte(") ( 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseStatPPID(data)
		parseStatusUID(data)
		parseCgroup2(data)
	})
}

func TestMaskNames(t *testing.T) {
	m, err := ParseMask([]string{"open", "exec"})
	if err != nil || m != Open|Exec || m.String() != "open|exec" {
		t.Fatalf("ParseMask: %v %v", m, err)
	}
	if _, err := ParseMask([]string{"write"}); err == nil {
		t.Fatal("unknown access accepted")
	}
}
