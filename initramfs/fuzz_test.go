package initramfs

import (
	"bytes"
	"testing"
)

func FuzzReadArchive(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteArchive(&buf, []Entry{
		{Name: "etc", Mode: typeDir | 0o755},
		{Name: "etc/hostname", Mode: typeRegular | 0o644, Data: []byte("vigil\n")},
		{Name: "bin/sh", Mode: typeSymlink | 0o777, Data: []byte("busybox")},
	}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("070701"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ReadArchive(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever parses must write back and parse to the same entries.
		var out bytes.Buffer
		if err := WriteArchive(&out, entries); err != nil {
			return // names the writer refuses (absolute, duplicate) are fine to reject
		}
		again, err := ReadArchive(&out)
		if err != nil {
			t.Fatalf("re-read of written archive: %v", err)
		}
		if len(again) != len(entries) {
			t.Fatalf("re-read %d entries, wrote %d", len(again), len(entries))
		}
	})
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add([]byte("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\nkernel/lib/crc16.ko:\n"))
	f.Add([]byte("# comment\n\nkernel/drivers/char/hw_random/virtio-rng.ko.xz: a.ko\n"))
	f.Add([]byte("no colon here\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		deps, err := ParseModulesDep(bytes.NewReader(data))
		if err != nil {
			return
		}
		var list []ModuleDep
		for _, d := range deps {
			list = append(list, d)
		}
		if _, err := ParseModulesDep(bytes.NewReader(FormatModulesDep(list))); err != nil {
			t.Fatalf("formatted modules.dep does not parse: %v", err)
		}
	})
}
