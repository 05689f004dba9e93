package dbus

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// objectKind is what an object path names.
type objectKind int

const (
	kindNode    objectKind = iota // an inner node: introspection only
	kindManager                   // /org/freedesktop/systemd1
	kindUnit                      // /org/freedesktop/systemd1/unit/<escaped>
	kindJob                       // /org/freedesktop/systemd1/job/<id>
	kindBus                       // /org/freedesktop/DBus on a peer-to-peer connection
)

// object is one resolved object path, with the state its properties are
// read from, fetched once per call.
type object struct {
	kind  objectKind
	path  dbus.ObjectPath
	unit  *UnitProps
	info  *ManagerInfo
	job   *Job
	ifcs  []*iface // specific interfaces, in GetAll("") order
	nodes []string // child node names, for introspection
}

// service gives the Service state; never nil.
func (o *object) service() *ServiceProps {
	if o.unit != nil && o.unit.Service != nil {
		return o.unit.Service
	}
	return &ServiceProps{}
}

// method is one D-Bus method: its signatures, whether it changes state
// (root only), and its implementation.
type method struct {
	name    string
	in, out string
	// argNames name the in and out arguments for introspection.
	argNames []string
	write    bool
	fn       func(c *call, o *object) ([]any, error)
}

type signal struct {
	name string
	sig  string
	args []string
}

// iface is one interface: what dispatch and introspection both read.
type iface struct {
	name    string
	methods []method
	signals []signal
	props   []property
	// byName indexes props.
	byName map[string]*property
}

func newIface(name string, methods []method, signals []signal, props []property) *iface {
	ifc := &iface{name: name, methods: methods, signals: signals, props: props, byName: map[string]*property{}}
	for i := range ifc.props {
		ifc.byName[ifc.props[i].name] = &ifc.props[i]
	}
	return ifc
}

func (ifc *iface) method(name string) *method {
	for i := range ifc.methods {
		if ifc.methods[i].name == name {
			return &ifc.methods[i]
		}
	}
	return nil
}

// tables holds every interface, built once per Server.
type tables struct {
	manager, unit, service, socket, target, job, mount, timer, path, slice, scope, device, automount, swap *iface
	// standard are Peer, Introspectable and Properties, on every object.
	standard []*iface
}

// typeIface is a unit type's own interface.
func (t *tables) typeIface(name string) *iface {
	switch unitType(name) {
	case "service":
		return t.service
	case "socket":
		return t.socket
	case "target":
		return t.target
	case "mount":
		return t.mount
	case "timer":
		return t.timer
	case "path":
		return t.path
	case "slice":
		return t.slice
	case "scope":
		return t.scope
	case "device":
		return t.device
	case "automount":
		return t.automount
	case "swap":
		return t.swap
	}
	return nil
}

// resolve finds the object at p, fetching its state from the manager.
// Unit paths answer for any syntactically valid unit name: a unit that is
// not loaded reads as not-found, as systemd's do (systemctl relies on it).
func (s *Server) resolve(p dbus.ObjectPath) (*object, error) {
	ps := string(p)
	switch {
	case p == managerPath:
		// The Manager's properties are fetched by readProperties, when a
		// call reads them: Info walks every unit on the loop, which its
		// methods (ListUnits, StartUnit, GetUnit...) do not need.
		return &object{kind: kindManager, path: p, ifcs: []*iface{s.t.manager}, nodes: []string{"unit", "job"}}, nil
	case strings.HasPrefix(ps, unitPrefix):
		name := UnescapeBusLabel(ps[len(unitPrefix):])
		if !validUnitName(name) {
			return nil, Errorf(ErrNameUnknownObject, "Unknown object '%s'.", p)
		}
		props, ok, err := s.m.Unit(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			props = notFoundUnit(name)
		}
		return s.unitObject(p, &props), nil
	case strings.HasPrefix(ps, jobPrefix):
		id, err := strconv.ParseUint(ps[len(jobPrefix):], 10, 64)
		if err != nil {
			return nil, Errorf(ErrNameUnknownObject, "Unknown object '%s'.", p)
		}
		jobs, err := s.m.Jobs()
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			if j.ID == id {
				return &object{kind: kindJob, path: p, job: &j, ifcs: []*iface{s.t.job}}, nil
			}
		}
		return nil, Errorf(ErrNameUnknownObject, "Unknown object '%s'.", p)
	case ps == "/":
		return &object{kind: kindNode, path: p, nodes: []string{"org"}}, nil
	case ps == "/org":
		return &object{kind: kindNode, path: p, nodes: []string{"freedesktop"}}, nil
	case ps == "/org/freedesktop":
		return &object{kind: kindNode, path: p, nodes: []string{"systemd1"}}, nil
	case ps == unitPrefix[:len(unitPrefix)-1]:
		units, err := s.m.ListUnits()
		if err != nil {
			return nil, err
		}
		o := &object{kind: kindNode, path: p}
		for _, u := range units {
			o.nodes = append(o.nodes, EscapeBusLabel(u.Name))
		}
		return o, nil
	case ps == jobPrefix[:len(jobPrefix)-1]:
		jobs, err := s.m.Jobs()
		if err != nil {
			return nil, err
		}
		o := &object{kind: kindNode, path: p}
		for _, j := range jobs {
			o.nodes = append(o.nodes, uitoa(j.ID))
		}
		return o, nil
	}
	return nil, Errorf(ErrNameUnknownObject, "Unknown object '%s'.", p)
}

// unitObject is the object of a unit described by props: its type's
// interface, then Unit.
func (s *Server) unitObject(p dbus.ObjectPath, props *UnitProps) *object {
	o := &object{kind: kindUnit, path: p, unit: props}
	if ti := s.t.typeIface(props.ID); ti != nil {
		o.ifcs = append(o.ifcs, ti)
	}
	o.ifcs = append(o.ifcs, s.t.unit)
	return o
}

// readProperties fetches the state o's properties are read from, if
// resolve left it for later.
func (s *Server) readProperties(o *object) error {
	if o.kind != kindManager || o.info != nil {
		return nil
	}
	info, err := s.m.Info()
	if err != nil {
		return err
	}
	o.info = &info
	return nil
}

// notFoundUnit is how a unit that is not loaded reads.
func notFoundUnit(name string) UnitProps {
	return UnitProps{ID: name, Names: []string{name}, LoadState: "not-found", ActiveState: "inactive",
		SubState: "dead", LoadError: "Unit " + name + " not found."}
}

// introspect renders an object's introspection XML.
func (s *Server) introspect(o *object) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
`)
	for _, ifc := range s.t.standard {
		writeIface(&b, ifc)
	}
	for _, ifc := range o.ifcs {
		writeIface(&b, ifc)
	}
	nodes := append([]string(nil), o.nodes...)
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(&b, " <node name=\"%s\"/>\n", n)
	}
	b.WriteString("</node>\n")
	return b.String()
}

func writeIface(b *strings.Builder, ifc *iface) {
	fmt.Fprintf(b, " <interface name=\"%s\">\n", ifc.name)
	for _, m := range ifc.methods {
		fmt.Fprintf(b, "  <method name=\"%s\">\n", m.name)
		n := 0
		for _, dir := range []struct{ sig, dir string }{{m.in, "in"}, {m.out, "out"}} {
			for _, t := range splitSignature(dir.sig) {
				name := "arg" + strconv.Itoa(n)
				if n < len(m.argNames) {
					name = m.argNames[n]
				}
				fmt.Fprintf(b, "   <arg type=\"%s\" name=\"%s\" direction=\"%s\"/>\n", t, name, dir.dir)
				n++
			}
		}
		b.WriteString("  </method>\n")
	}
	for _, sg := range ifc.signals {
		fmt.Fprintf(b, "  <signal name=\"%s\">\n", sg.name)
		for i, t := range splitSignature(sg.sig) {
			name := "arg" + strconv.Itoa(i)
			if i < len(sg.args) {
				name = sg.args[i]
			}
			fmt.Fprintf(b, "   <arg type=\"%s\" name=\"%s\"/>\n", t, name)
		}
		b.WriteString("  </signal>\n")
	}
	for _, p := range ifc.props {
		fmt.Fprintf(b, "  <property name=\"%s\" type=\"%s\" access=\"read\"/>\n", p.name, p.sig)
	}
	b.WriteString(" </interface>\n")
}

// splitSignature splits a signature into its complete types.
func splitSignature(sig string) []string {
	var out []string
	for len(sig) > 0 {
		n := completeTypeLen(sig)
		if n <= 0 {
			return append(out, sig)
		}
		out = append(out, sig[:n])
		sig = sig[n:]
	}
	return out
}

func completeTypeLen(sig string) int {
	if sig == "" {
		return 0
	}
	switch sig[0] {
	case 'a':
		n := completeTypeLen(sig[1:])
		if n <= 0 {
			return -1
		}
		return 1 + n
	case '(', '{':
		closer := byte(')')
		if sig[0] == '{' {
			closer = '}'
		}
		i := 1
		for i < len(sig) && sig[i] != closer {
			n := completeTypeLen(sig[i:])
			if n <= 0 {
				return -1
			}
			i += n
		}
		if i >= len(sig) {
			return -1
		}
		return i + 1
	}
	return 1
}

// matchPatterns is fnmatch over unit names, as ListUnitsByPatterns does.
func matchPatterns(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
