// Command dbusclient is a static helper the D-Bus guest tests run inside
// the QEMU guest. It has two jobs:
//
//	dbusclient gosd private|system   a client built on
//	    github.com/coreos/go-systemd/v22/dbus (code no one here wrote)
//	    talks to Vigil: ListUnits, StartUnit with a result channel,
//	    GetUnitProperties. It prints one "gosd ..." line per finding.
//	dbusclient time LABEL N CMD ARGS...   runs CMD N times and prints
//	    "time LABEL ms,ms,..." (wall time of each run, output discarded),
//	    for the guest benchmarks: busybox has no sub-millisecond clock.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dbusclient gosd private|system | time LABEL N CMD ARGS...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gosd":
		err = gosd(os.Args[2:])
	case "time":
		err = timeRuns(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbusclient:", err)
		os.Exit(1)
	}
}

func gosd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("gosd: want private or system")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conn *sd.Conn
	var err error
	switch args[0] {
	case "private":
		conn, err = sd.NewSystemdConnectionContext(ctx)
	case "system":
		conn, err = sd.NewSystemConnectionContext(ctx)
	default:
		return fmt.Errorf("gosd: unknown transport %q", args[0])
	}
	if err != nil {
		return fmt.Errorf("connect (%s): %w", args[0], err)
	}
	defer conn.Close()

	list, err := conn.ListUnitsContext(ctx)
	if err != nil {
		return fmt.Errorf("ListUnits: %w", err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	fmt.Printf("gosd listunits count=%d\n", len(list))
	for _, u := range list {
		fmt.Printf("gosd unit %s %s %s %s %s\n", u.Name, u.LoadState, u.ActiveState, u.SubState, u.Path)
	}

	for _, name := range []string{"gosd-once.service", "fail.service"} {
		result := make(chan string, 1)
		id, err := conn.StartUnitContext(ctx, name, "replace", result)
		if err != nil {
			fmt.Printf("gosd start %s error=%v\n", name, err)
			continue
		}
		select {
		case r := <-result:
			fmt.Printf("gosd start %s job=%d result=%s\n", name, id, r)
		case <-ctx.Done():
			fmt.Printf("gosd start %s job=%d result=timeout\n", name, id)
		}
	}

	props, err := conn.GetUnitPropertiesContext(ctx, "gosd-once.service")
	if err != nil {
		return fmt.Errorf("GetUnitProperties: %w", err)
	}
	for _, k := range []string{"Id", "Description", "LoadState", "ActiveState", "SubState", "FragmentPath"} {
		fmt.Printf("gosd prop %s=%v\n", k, props[k])
	}
	svc, err := conn.GetUnitTypePropertiesContext(ctx, "gosd-once.service", "Service")
	if err != nil {
		return fmt.Errorf("GetUnitTypeProperties: %w", err)
	}
	for _, k := range []string{"Type", "Result", "ExecMainStatus"} {
		fmt.Printf("gosd prop %s=%v\n", k, svc[k])
	}
	return nil
}

func timeRuns(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("time: want LABEL N CMD ARGS...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return fmt.Errorf("time: bad count %q", args[1])
	}
	var ms []string
	for i := 0; i < n; i++ {
		cmd := exec.Command(args[2], args[3:]...)
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("time %s: %s: %w", args[0], strings.Join(args[2:], " "), err)
		}
		ms = append(ms, strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64))
	}
	fmt.Printf("time %s %s\n", args[0], strings.Join(ms, ","))
	return nil
}
