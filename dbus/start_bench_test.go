package dbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// BenchmarkStartOneshot1000Units is the server's side of `systemctl start`
// of a trivial oneshot with 1,000 other units loaded: StartUnit, then the
// wait for its JobRemoved, over one connection subscribed to signals.
func BenchmarkStartOneshot1000Units(b *testing.B) {
	files := map[string]string{"one.service": "[unit]\nstart-limit-interval = \"0\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n"
	}
	h := newHarness(b, files)
	conn := godbusClient(b, h.sock)
	if err := conn.Object(busName, managerPath).Call(ifaceManager+".Subscribe", 0).Err; err != nil {
		b.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	manager := conn.Object(busName, managerPath)
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		var job dbus.ObjectPath
		if err := manager.Call(ifaceManager+".StartUnit", 0, "one.service", "replace").Store(&job); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case s := <-sigs:
				if s.Name == ifaceManager+".JobRemoved" && s.Body[1] == job {
					if s.Body[3] != "done" {
						b.Fatalf("JobRemoved %v", s.Body)
					}
					break wait
				}
			case <-deadline:
				b.Fatal("no JobRemoved for", job)
			}
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
