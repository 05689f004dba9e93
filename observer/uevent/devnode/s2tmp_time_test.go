package devnode

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/observer/uevent"
)

func TestS2TimeCorpus(t *testing.T) {
	dir := os.Getenv("S2DIR")
	files, _ := filepath.Glob(dir + "/*")
	type r struct {
		d    time.Duration
		name string
	}
	var rs []r
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.SplitN(string(b), "\n", 3)
		s := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		src, err := strconv.Unquote(s)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		start := time.Now()
		rsx, err := ParseRules("fuzz.toml", []byte(src))
		p := time.Since(start)
		if err == nil {
			rsx.Apply(&uevent.Uevent{Action: "add", Subsystem: "block", DevName: "vda"}, t.TempDir())
		}
		rs = append(rs, r{time.Since(start), filepath.Base(f) + " parse=" + p.String() + " len=" + strconv.Itoa(len(src))})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].d > rs[j].d })
	for _, x := range rs[:5] {
		t.Log(x.d, x.name)
	}
}
