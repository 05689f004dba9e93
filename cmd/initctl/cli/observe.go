package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"vigil/observer"
	"vigil/units/api"
)

func (e *env) runEmit(p *parsed) int {
	args := api.EmitArgs{Kind: p.args[0]}
	for _, kv := range p.args[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(e.stderr, "%s emit: %q is not KEY=VALUE\n", e.program, kv)
			return exitUsage
		}
		if args.Attrs == nil {
			args.Attrs = map[string]string{}
		}
		args.Attrs[k] = v
	}
	if err := e.call(api.MethodEmit, args, nil, nil); err != nil {
		return e.fail("emit "+args.Kind, err)
	}
	return exitOK
}

func (e *env) runObserve(p *parsed) int {
	filter := strings.Join(p.args, " ")
	// Check the filter here too, for an error before connecting.
	if _, err := observer.ParseFilter(filter); err != nil {
		fmt.Fprintf(e.stderr, "%s observe: %v\n", e.program, err)
		return exitUsage
	}
	if !e.quiet && !e.json && e.errTTY {
		what := filter
		if what == "" {
			what = "every source"
		}
		fmt.Fprintf(e.stderr, "Observing events of %s; press Ctrl-C to stop.\n\n", what)
	}
	err := e.call(api.MethodObserve, api.ObserveArgs{Filter: filter}, nil, func(raw json.RawMessage) {
		var ev api.ObservedEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return
		}
		if e.json {
			e.printJSONLine(ev)
			return
		}
		fmt.Fprintln(e.stdout, formatObserved(ev))
	})
	if err != nil {
		code := e.fail("observe", err)
		if code == exitInterrupted {
			return exitOK // Ctrl-C is how observing ends
		}
		return code
	}
	return exitOK
}

// formatObserved renders an event the way the observer core does (and
// `udevadm monitor`): "UEVENT add [12.345678] ACTION=add DEVNAME=vdb".
func formatObserved(ev api.ObservedEvent) string {
	oe := observer.Event{Seq: ev.Seq, Source: ev.Source, Kind: ev.Kind, Attrs: ev.Attrs, Mono: ev.Mono, Wall: ev.Wall}
	if ev.HoldID != 0 {
		oe.Hold = &observer.Hold{ID: ev.HoldID}
	}
	return oe.String()
}

func (e *env) runObservers(p *parsed) int {
	var res api.ObserversResult
	if err := e.call(api.MethodObservers, nil, &res, nil); err != nil {
		return e.fail("list observers", err)
	}
	if e.json {
		return e.printJSON(res)
	}
	t := &table{header: []string{"ID", "GUEST", "NAME", "MATCHED", "DROPPED", "OVERRULED", "FILTER"}}
	for _, o := range res.Observers {
		filter := o.Filter
		if filter == "" {
			filter = "(everything)"
		}
		overruled := "-" // not a deciding observer
		if o.Decides {
			overruled = fmt.Sprint(o.Overruled)
		}
		t.add("", fmt.Sprint(o.ID), o.Guest, o.Name, fmt.Sprint(o.Matched), fmt.Sprint(o.Dropped), overruled, filter)
	}
	s := &table{header: []string{"SOURCE", "POSTED", "DROPPED"}}
	for _, src := range res.Sources {
		s.add("", src.Name, fmt.Sprint(src.Posted), fmt.Sprint(src.Dropped))
	}
	if !e.tty {
		// Off a terminal both tables go to one stream: the first word of
		// a row says which table it belongs to.
		for i := range t.rows {
			t.rows[i] = append([]string{"observer"}, t.rows[i]...)
		}
		for i := range s.rows {
			s.rows[i] = append([]string{"source"}, s.rows[i]...)
		}
	}
	e.renderTable(t)
	if e.legend {
		fmt.Fprintf(e.stdout, "\n%d observers.\n\n", len(res.Observers))
	} else if e.tty {
		fmt.Fprintln(e.stdout)
	}
	e.renderTable(s)
	if e.legend {
		fmt.Fprintf(e.stdout, "\n%d sources.\n", len(res.Sources))
	}
	// Restarted or failed sources get a line each below the table, so the
	// table keeps its columns (scripts read it) and the news stands out.
	for _, src := range res.Sources {
		switch {
		case src.Failed:
			fmt.Fprintf(e.stdout, "source %s FAILED after %d restarts: %s\n", src.Name, src.Restarts, src.LastError)
		case src.Restarts > 0:
			fmt.Fprintf(e.stdout, "source %s restarted %d times; last error: %s\n", src.Name, src.Restarts, src.LastError)
		}
	}
	return exitOK
}
