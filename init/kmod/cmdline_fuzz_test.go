package kmod

import (
	"strings"
	"testing"

	"vigil/init/cmdline"
)

// FuzzCmdlineOptions checks the parameters a kernel command line gives a
// module ("virtio_blk.queue_depth=8"): what cmdlineOptions hands to
// finit_module must split, by the kernel's own rules, into exactly the
// parameters the command line said, values included.
func FuzzCmdlineOptions(f *testing.F) {
	for _, s := range []string{
		"virtio_blk.queue_depth=8 virtio-blk.x",
		`virtio_blk.name="a b" quiet -- virtio_blk.after=1`,
		"virtio_blk.v=\"a\nb\"",
		"virtio_blk.v=\"a\tb\fc\"",
		`modules-load=a,b rd.modules-load=c virtio_blk.`,
		`"virtio_blk.q=1"`,
		`"virtio_blk.a b=1"`,
	} {
		f.Add(s, "virtio_blk")
	}
	f.Fuzz(func(t *testing.T, line, module string) {
		FromCmdline(line)
		opts := cmdlineOptions(line, module)
		if len(opts) == 0 {
			return
		}
		var want []cmdline.Param
		for _, p := range cmdline.Parse(line).Params {
			mod, param, ok := strings.Cut(p.Key, ".")
			// A parameter with white space in its name, named "--", or
			// with a NUL anywhere, is dropped, not split.
			if !p.AfterSeparator && ok && param != "" && param != "--" && !strings.ContainsAny(param, kernelSpace+"\x00") && !strings.ContainsRune(p.Value, 0) && ModuleName(mod) == module {
				want = append(want, cmdline.Param{Key: param, Value: p.Value, HasValue: p.HasValue})
			}
		}
		got := cmdline.Parse(strings.Join(opts, " ")).Params
		if len(got) != len(want) {
			t.Fatalf("%q gave options %q: %d parameters, want %d", line, opts, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q gave options %q: parameter %+v, want %+v", line, opts, got[i], want[i])
			}
		}
	})
}
