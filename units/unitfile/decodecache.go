package unitfile

import (
	"reflect"
	"slices"
	"sync"
)

// Decoded units kept between scans.
//
// Decoding a unit (applying its parsed files onto the defaults, checking
// every value, expanding specifiers, finding executables) was most of what
// was left of a daemon-reload once the FileCache kept the parsed files. A
// unit's decoding depends on exactly these inputs:
//
//   - the files applied, in order: the fragment and the drop-ins. The
//     FileCache hands out the same *parsedFile for a file that did not
//     change (same device, inode, size, mtime and ctime, read outside the
//     racy window), so equal pointers mean equal content;
//   - its name (the %n, %i, ... specifiers, where= from the name);
//   - the Context (%H, %m, %t, ... and the executable search path);
//   - whether each executable it names exists (resolving a plain name in
//     the search path, and the warnings about missing ones).
//
// A ScanCached with a cache reuses a unit's earlier decoding when all of
// these are unchanged. What comes from the directories and not from the
// unit's files (.wants/.requires links, aliases) is added after every scan,
// reused or not. Generators write files like any other, and environment
// files are read when a process starts, not when a unit is decoded.
//
// The kept decoding is never handed out: every scan gives each unit its own
// deep copy (Unit.clone), because the manager's behaviours keep and may
// change the values they were given (an automount keeps its old where while
// it runs), and such a change must not leak into the next reload.
type decodedUnit struct {
	fragment string
	dropIns  []string
	// inputs are the parsed fragment (if the unit has one) and drop-ins.
	inputs []*parsedFile
	execs  []execCheck
	unit   *Unit
}

// execCheck is one executable lookup a decoding made, and its answer.
type execCheck struct {
	path string
	ok   bool
}

// decodeCache is the FileCache's part for decoded units.
type decodeCache struct {
	// units are the decodings of the last Scan, by primary name.
	units map[string]*decodedUnit
	// ctx is the Context those decodings were made with.
	ctx Context
	// next collects the decodings of the Scan under way; units not loaded
	// by it are forgotten. The two maps swap at the end of a Scan.
	next     map[string]*decodedUnit
	scanning bool
	// decoded names the units the last Scan decoded (not reused).
	decoded []string
}

// Decoded names the units the last ScanCached with this cache decoded
// from their files instead of reusing an earlier decoding, sorted.
func (fc *FileCache) Decoded() []string {
	if fc == nil {
		return nil
	}
	return slices.Sorted(slices.Values(fc.dec.decoded))
}

// beginDecoding starts a Scan: decodings made with another Context are
// dropped.
func (fc *FileCache) beginDecoding(ctx *Context) {
	if fc == nil {
		return
	}
	if !reflect.DeepEqual(&fc.dec.ctx, ctx) {
		fc.dec.units = nil
		fc.dec.ctx = *ctx
		fc.dec.ctx.ExecSearchPath = slices.Clone(ctx.ExecSearchPath)
	}
	if fc.dec.next == nil {
		fc.dec.next = make(map[string]*decodedUnit, len(fc.dec.units))
	}
	clear(fc.dec.next)
	fc.dec.decoded = fc.dec.decoded[:0]
	fc.dec.scanning = true
}

// endDecoding keeps the decodings of the Scan that ends.
func (fc *FileCache) endDecoding() {
	if fc == nil {
		return
	}
	fc.dec.units, fc.dec.next = fc.dec.next, fc.dec.units
	fc.dec.scanning = false
}

// reuse gives a copy of the earlier decoding of name if its inputs did not
// change, and nil otherwise.
func (fc *FileCache) reuse(name, fragment string, dropIns []string, inputs []*parsedFile, execCache map[string]bool) *Unit {
	if fc == nil || !fc.dec.scanning || !unitCloneable() {
		return nil
	}
	e := fc.dec.units[name]
	if e == nil || e.fragment != fragment || !slices.Equal(e.dropIns, dropIns) || !slices.Equal(e.inputs, inputs) {
		return nil
	}
	for _, x := range e.execs {
		if isExecutable(execCache, x.path) != x.ok {
			return nil
		}
	}
	fc.dec.next[name] = e
	return e.unit.clone()
}

// keepDecoding remembers a fresh decoding of name (a copy: u goes to the
// caller).
func (fc *FileCache) keepDecoding(name string, u *Unit, dropIns []string, inputs []*parsedFile, execs []execCheck) {
	if fc == nil || !fc.dec.scanning {
		return
	}
	fc.dec.decoded = append(fc.dec.decoded, name)
	if !unitCloneable() {
		return
	}
	for _, in := range inputs {
		if in.readErr != nil {
			return // read again next time: the error may be gone
		}
	}
	fc.dec.next[name] = &decodedUnit{fragment: u.Fragment, dropIns: slices.Clone(dropIns),
		inputs: inputs, execs: execs, unit: u.clone()}
}

// clone gives a deep copy of u: no pointer, slice or map of the copy is
// shared with u.
func (u *Unit) clone() *Unit {
	plan := unitCopyPlan()
	c := new(Unit)
	v := reflect.ValueOf(c).Elem()
	src := reflect.ValueOf(u).Elem()
	v.Set(src)
	plan.root.fixStruct(v, src)
	return c
}

// unitCloneable reports whether clone can copy every field of Unit deeply;
// if a field it cannot copy is ever added (an unexported reference, an
// interface, a func or a channel), decodings are simply not reused, and
// TestUnitCloneable fails.
func unitCloneable() bool { return len(unitCopyPlan().unsupported) == 0 }

// copyPlan says, for every type reachable from Unit, which parts hold
// references and must be copied one by one; everything else is copied by
// plain assignment. It is built once and then only read: a tree of nodes,
// so that copying looks nothing up by type.
type copyPlan struct {
	root *copyNode
	// unsupported names the fields clone cannot copy deeply.
	unsupported []string
}

// copyNode is the plan of one type.
type copyNode struct {
	refs bool      // the type holds references
	elem *copyNode // of a pointer, slice, array, or a map's values
	// fields are a struct's fields that hold references.
	fields []copyField
}

type copyField struct {
	index int
	node  *copyNode
}

var unitCopyPlan = sync.OnceValue(func() *copyPlan {
	p := &copyPlan{}
	p.root = p.visit(reflect.TypeOf(Unit{}), "Unit", map[reflect.Type]*copyNode{})
	return p
})

// visit builds the node of t.
func (p *copyPlan) visit(t reflect.Type, where string, seen map[reflect.Type]*copyNode) *copyNode {
	if n := seen[t]; n != nil {
		return n
	}
	n := &copyNode{refs: true} // a recursive type holds references
	seen[t] = n
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		n.elem = p.visit(t.Elem(), where+"[]", seen)
	case reflect.Map:
		if p.visit(t.Key(), where+" key", seen).refs {
			p.unsupported = append(p.unsupported, where+": map key with references")
		}
		n.elem = p.visit(t.Elem(), where+"[k]", seen)
	case reflect.Array:
		n.elem = p.visit(t.Elem(), where+"[n]", seen)
		n.refs = n.elem.refs
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			fn := p.visit(f.Type, where+"."+f.Name, seen)
			if !fn.refs {
				continue
			}
			if !f.IsExported() {
				p.unsupported = append(p.unsupported, where+"."+f.Name+": unexported field with references")
			}
			n.fields = append(n.fields, copyField{i, fn})
		}
		n.refs = len(n.fields) > 0
	case reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
		p.unsupported = append(p.unsupported, where+": "+t.Kind().String())
	default:
		n.refs = false
	}
	return n
}

// fixStruct replaces the references of dst, a shallow copy of src, by deep
// copies.
func (n *copyNode) fixStruct(dst, src reflect.Value) {
	for _, f := range n.fields {
		s := src.Field(f.index)
		switch s.Kind() {
		case reflect.Struct:
			f.node.fixStruct(dst.Field(f.index), s)
			continue
		case reflect.Pointer, reflect.Map:
			if s.IsNil() {
				continue // nil in the shallow copy too
			}
		case reflect.Slice:
			if s.Cap() == 0 {
				continue // nil or empty: nothing an append could share
			}
		}
		f.node.copyInto(dst.Field(f.index), s)
	}
}

// copyInto sets dst to a deep copy of src, a value of n's type.
func (n *copyNode) copyInto(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		v := reflect.New(src.Type().Elem())
		n.elem.copyInto(v.Elem(), src.Elem())
		dst.Set(v)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		l := src.Len()
		v := reflect.MakeSlice(src.Type(), l, l)
		if n.elem.refs {
			for i := range l {
				n.elem.copyInto(v.Index(i), src.Index(i))
			}
		} else {
			reflect.Copy(v, src)
		}
		dst.Set(v)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		v := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			val := it.Value()
			if n.elem.refs {
				c := reflect.New(val.Type()).Elem()
				n.elem.copyInto(c, val)
				val = c
			}
			v.SetMapIndex(it.Key(), val)
		}
		dst.Set(v)
	case reflect.Struct:
		dst.Set(src)
		n.fixStruct(dst, src)
	case reflect.Array:
		dst.Set(src)
		if n.elem.refs {
			for i := range src.Len() {
				n.elem.copyInto(dst.Index(i), src.Index(i))
			}
		}
	default:
		dst.Set(src)
	}
}
