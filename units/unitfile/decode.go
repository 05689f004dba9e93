package unitfile

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// valueDecoder is implemented by value types that read themselves from a
// decoded TOML value (string, int64, float64, bool, []any, map[string]any).
// They append for list values and reset on an empty one.
type valueDecoder interface {
	decodeValue(raw any, vc *valueCtx) error
}

// enumerated is implemented by string types with a fixed set of values.
type enumerated interface {
	enumValues() []string
}

// defaulter is implemented by sections with defaults.
type defaulter interface {
	setDefaults()
}

// keyHook is implemented by sections where a key sets other fields
// (timeout-sec sets timeout-start and timeout-stop).
type keyHook interface {
	afterKey(key string)
}

type fieldOpts struct {
	split     bool // a string is a white-space separated list
	words     bool // an array of strings is one command's words
	percent   bool // sizes may be percentages
	transient bool // the key only sets other fields
}

type fieldSpec struct {
	key      string
	index    []int
	typ      reflect.Type
	check    string
	min, max *int64
	opts     fieldOpts
}

type sectionSpec struct {
	name   string
	field  int // index of the section's field in Unit
	ptr    bool
	elem   reflect.Type
	types  []UnitType // nil: every type
	fields []fieldSpec
	byKey  map[string]int
	keys   []string
}

func (s *sectionSpec) allows(t UnitType) bool {
	if s.types == nil {
		return true
	}
	for _, x := range s.types {
		if x == t {
			return true
		}
	}
	return false
}

// schema is the table of sections and keys built from the struct tags of
// Unit. It is built once per process (unitSchema) and then only read.
type schema struct {
	sections []sectionSpec
	byName   map[string]int
	names    []string
}

// unitSchema is the schema, built on first use: a constant table derived
// from Unit's struct tags, shared by every Load, Scan and Check. Building
// it walks Unit's fields by reflection, which was a third of the CPU time
// of a daemon-reload with a few dozen units.
var unitSchema = sync.OnceValue(newSchema)

func newSchema() *schema {
	s := &schema{byName: map[string]int{}}
	ut := reflect.TypeOf(Unit{})
	for i := 0; i < ut.NumField(); i++ {
		f := ut.Field(i)
		name := f.Tag.Get("section")
		if name == "" {
			continue
		}
		spec := sectionSpec{name: name, field: i, byKey: map[string]int{}}
		spec.elem = f.Type
		if f.Type.Kind() == reflect.Pointer {
			spec.ptr, spec.elem = true, f.Type.Elem()
		}
		if t := f.Tag.Get("types"); t != "" {
			for _, x := range strings.Fields(t) {
				spec.types = append(spec.types, UnitType(x))
			}
		}
		collectFields(spec.elem, nil, &spec)
		for j, fs := range spec.fields {
			spec.byKey[fs.key] = j
			spec.keys = append(spec.keys, fs.key)
		}
		s.byName[name] = len(s.sections)
		s.names = append(s.names, name)
		s.sections = append(s.sections, spec)
	}
	return s
}

func collectFields(t reflect.Type, index []int, spec *sectionSpec) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, spec)
			continue
		}
		key := f.Tag.Get("key")
		if key == "" {
			continue
		}
		fs := fieldSpec{key: key, index: idx, typ: f.Type, check: f.Tag.Get("check")}
		for _, o := range strings.Split(f.Tag.Get("opt"), ",") {
			switch o {
			case "split":
				fs.opts.split = true
			case "words":
				fs.opts.words = true
			case "percent":
				fs.opts.percent = true
			case "transient":
				fs.opts.transient = true
			}
		}
		if v, err := strconv.ParseInt(f.Tag.Get("min"), 10, 64); err == nil {
			fs.min = &v
		}
		if v, err := strconv.ParseInt(f.Tag.Get("max"), 10, 64); err == nil {
			fs.max = &v
		}
		spec.fields = append(spec.fields, fs)
	}
}

// sectionValue gives the addressable struct of section spec in u,
// allocating it with its defaults if needed.
func (s *schema) sectionValue(u *Unit, spec *sectionSpec) reflect.Value {
	f := reflect.ValueOf(u).Elem().Field(spec.field)
	if !spec.ptr {
		return f
	}
	if f.IsNil() {
		v := reflect.New(spec.elem)
		if d, ok := v.Interface().(defaulter); ok {
			d.setDefaults()
		}
		f.Set(v)
	}
	return f.Elem()
}

// newUnit gives a unit of name with the sections of its type allocated and
// every default applied.
func (s *schema) newUnit(name Name) *Unit {
	u := &Unit{Name: name.String(), ID: name, Type: name.Type, LoadState: LoadStateLoaded}
	u.Unit.setDefaults()
	for i := range s.sections {
		spec := &s.sections[i]
		if spec.ptr && spec.types != nil && spec.allows(name.Type) {
			s.sectionValue(u, spec)
		}
	}
	return u
}

// unitDecoder applies the files of one unit in order, collecting problems.
type unitDecoder struct {
	schema   *schema
	ctx      *Context
	unit     *Unit
	exp      specifierExpander
	problems []Problem
	// parseFailed is set when a file was not valid TOML: checks across
	// keys would then report what is only missing from that file.
	parseFailed bool
	// execCache remembers which executables exist, shared by the units
	// of one Scan.
	execCache map[string]bool
	// execChecks lists the executables looked up, with the answers.
	execChecks []execCheck
	// setBy maps "section.key" to the file that last set it, for placing
	// problems found after all files were read.
	setBy map[string]*fileSource
}

// fileSource is one file's text, with its key positions built on demand.
type fileSource struct {
	path  string
	src   string
	index keyIndex
}

func (f *fileSource) lookup(path ...string) (int, int) {
	if f == nil {
		return 0, 0
	}
	if f.index == nil {
		f.index = indexKeys(f.src)
	}
	if p, ok := f.index.lookup(path...); ok {
		return p.line, p.col
	}
	return 0, 0
}

func newUnitDecoder(s *schema, ctx *Context, name Name) *unitDecoder {
	return &unitDecoder{
		schema: s, ctx: ctx, unit: s.newUnit(name),
		exp:       specifierExpander{ctx: ctx, name: name},
		setBy:     map[string]*fileSource{},
		execCache: map[string]bool{},
	}
}

func (d *unitDecoder) problemAt(f *fileSource, sev Severity, section, key, msg string, path ...string) {
	line, col := f.lookup(path...)
	p := Problem{Line: line, Column: col, Section: section, Key: key, Msg: msg, Severity: sev}
	if f != nil {
		p.File = f.path
	}
	d.problems = append(d.problems, p)
}

// parsedFile is a unit file read and parsed as TOML, before it is applied.
type parsedFile struct {
	src     string
	readErr error
	raw     map[string]any
	tomlErr error
}

// parseFile reads and parses path; Scan runs it for many files at once.
func parseFile(path string) *parsedFile {
	data, err := os.ReadFile(path)
	if err != nil {
		return &parsedFile{src: string(data), readErr: err}
	}
	return parseData(data)
}

// parseData parses a unit file's content as TOML.
func parseData(data []byte) *parsedFile {
	pf := &parsedFile{src: string(data)}
	if len(data) > 0 {
		_, pf.tomlErr = toml.Decode(pf.src, &pf.raw)
	}
	return pf
}

// applyFile decodes one unit file or drop-in onto the unit.
func (d *unitDecoder) applyFile(path string, data []byte) {
	pf := &parsedFile{src: string(data)}
	_, pf.tomlErr = toml.Decode(pf.src, &pf.raw)
	d.applyParsed(path, pf)
}

// applyParsed applies a file that was already read and parsed.
func (d *unitDecoder) applyParsed(path string, pf *parsedFile) {
	f := &fileSource{path: path, src: pf.src}
	raw := pf.raw
	if err := pf.tomlErr; err != nil {
		var pe toml.ParseError
		p := Problem{File: path, Msg: err.Error(), Severity: SeverityError}
		if errors.As(err, &pe) {
			p.Line, p.Column = pe.Position.Line, pe.Position.Col
			p.Msg = "invalid TOML: " + pe.Message
		}
		d.problems = append(d.problems, p)
		d.parseFailed = true
		return
	}
	for _, name := range sortedKeys(raw) {
		idx, ok := d.schema.byName[name]
		if !ok {
			d.unknownSection(f, name, raw[name])
			continue
		}
		spec := &d.schema.sections[idx]
		table, ok := raw[name].(map[string]any)
		if !ok {
			d.problemAt(f, SeverityError, "", name, fmt.Sprintf("expected a section [%s], got %s", name, describeTOML(raw[name])), name)
			continue
		}
		if !spec.allows(d.unit.Type) {
			d.problemAt(f, SeverityError, name, "", fmt.Sprintf("section not allowed in a .%s unit (allowed: %s)", d.unit.Type, d.allowedSections()), name)
			continue
		}
		d.applySection(f, spec, table)
	}
}

func (d *unitDecoder) allowedSections() string {
	var out []string
	for i := range d.schema.sections {
		if s := &d.schema.sections[i]; s.allows(d.unit.Type) {
			out = append(out, "["+s.name+"]")
		}
	}
	return strings.Join(out, ", ")
}

func (d *unitDecoder) unknownSection(f *fileSource, name string, val any) {
	if _, isTable := val.(map[string]any); !isTable {
		// A key before any section header.
		for i := range d.schema.sections {
			s := &d.schema.sections[i]
			if _, ok := s.byKey[name]; ok && s.allows(d.unit.Type) {
				d.problemAt(f, SeverityError, "", name, fmt.Sprintf("key outside any section (put it under [%s])", s.name), name)
				return
			}
		}
		d.problemAt(f, SeverityError, "", name, "key outside any section", name)
		return
	}
	msg := "unknown section"
	if s, ok := Nearest(name, d.schema.names); ok {
		msg += fmt.Sprintf(" (did you mean [%s]?)", s)
	}
	d.problemAt(f, SeverityError, name, "", msg, name)
}

func (d *unitDecoder) applySection(f *fileSource, spec *sectionSpec, table map[string]any) {
	dst := d.schema.sectionValue(d.unit, spec)
	for key := range table {
		if _, ok := spec.byKey[key]; !ok {
			d.problemAt(f, SeverityError, spec.name, key, d.unknownKeyMessage(spec, key), spec.name, key)
		}
	}
	for i := range spec.fields {
		fs := &spec.fields[i]
		raw, ok := table[fs.key]
		if !ok {
			continue
		}
		vc := valueCtx{d: d, file: f, section: spec.name, key: fs.key, opts: fs.opts}
		field := dst.FieldByIndex(fs.index)
		if err := decodeField(field, fs, raw, &vc); err != nil {
			d.problemAt(f, SeverityError, spec.name, fs.key, err.Error(), spec.name, fs.key)
			continue
		}
		d.setBy[spec.name+"."+fs.key] = f
		if h, ok := dst.Addr().Interface().(keyHook); ok {
			h.afterKey(fs.key)
		}
	}
}

// unknownKeyMessage suggests the nearest key of the section, or the section
// where the key belongs.
func (d *unitDecoder) unknownKeyMessage(spec *sectionSpec, key string) string {
	for i := range d.schema.sections {
		other := &d.schema.sections[i]
		if _, ok := other.byKey[key]; ok && other.name != spec.name && other.allows(d.unit.Type) {
			return fmt.Sprintf("unknown key (it belongs in [%s])", other.name)
		}
	}
	return unknownKeyMessage(key, spec.keys)
}

// valueCtx is what a value decoder knows of where it is.
type valueCtx struct {
	d       *unitDecoder
	file    *fileSource
	section string
	key     string
	opts    fieldOpts
}

func (vc *valueCtx) expand(s string) (string, error) {
	if vc.d == nil {
		return s, nil
	}
	return vc.d.exp.Expand(s)
}

// subProblem reports a problem with one key of a table value (a limit, a
// condition) without failing the others.
func (vc *valueCtx) subProblem(sub, msg string) {
	if vc.d == nil {
		return
	}
	vc.d.problemAt(vc.file, SeverityError, vc.section+"."+vc.key, sub, msg, vc.section, vc.key, sub)
}

// decodeField decodes raw into the field dst. Values are checked fully
// before dst is changed, so a bad value leaves the previous one.
func decodeField(dst reflect.Value, fs *fieldSpec, raw any, vc *valueCtx) error {
	if _, ok := dst.Addr().Interface().(valueDecoder); ok {
		tmp := reflect.New(dst.Type())
		tmp.Elem().Set(dst)
		if err := tmp.Interface().(valueDecoder).decodeValue(raw, vc); err != nil {
			return err
		}
		dst.Set(tmp.Elem())
		return nil
	}
	switch dst.Type() {
	case reflect.TypeOf(time.Duration(0)):
		d, err := durationFromTOML(raw)
		if err != nil {
			return err
		}
		dst.SetInt(int64(d))
		return nil
	case reflect.TypeOf(syscall.Signal(0)):
		sig, err := signalFromTOML(raw)
		if err != nil {
			return err
		}
		dst.SetInt(int64(sig))
		return nil
	}
	switch dst.Kind() {
	case reflect.Pointer:
		v := reflect.New(dst.Type().Elem())
		if !dst.IsNil() {
			v.Elem().Set(dst.Elem())
		}
		if err := decodeField(v.Elem(), fs, raw, vc); err != nil {
			return err
		}
		dst.Set(v)
		return nil
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			if e, isEnum := dst.Interface().(enumerated); isEnum {
				return fmt.Errorf("expected one of %s, got %s", strings.Join(e.enumValues(), ", "), describeTOML(raw))
			}
			return typeError("a string", raw)
		}
		s, err := vc.expand(s)
		if err != nil {
			return err
		}
		if e, isEnum := dst.Interface().(enumerated); isEnum {
			if err := checkEnum(s, e.enumValues()); err != nil {
				return err
			}
		} else if s != "" {
			if err := checkString(fs.check, s); err != nil {
				return err
			}
		}
		dst.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return typeError("true or false", raw)
		}
		dst.SetBool(b)
		return nil
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			return typeError("an integer", raw)
		}
		if fs.min != nil && n < *fs.min || fs.max != nil && n > *fs.max {
			return fmt.Errorf("%d out of range %s", n, rangeText(fs))
		}
		dst.SetInt(n)
		return nil
	case reflect.Slice:
		return decodeList(dst, fs, raw, vc)
	}
	return fmt.Errorf("internal: no decoder for %s", dst.Type())
}

func rangeText(fs *fieldSpec) string {
	switch {
	case fs.min != nil && fs.max != nil:
		return fmt.Sprintf("%d..%d", *fs.min, *fs.max)
	case fs.min != nil:
		return fmt.Sprintf("%d or more", *fs.min)
	case fs.max != nil:
		return fmt.Sprintf("%d or less", *fs.max)
	}
	return ""
}

// decodeList appends to a list field; "" or [] resets it.
func decodeList(dst reflect.Value, fs *fieldSpec, raw any, vc *valueCtx) error {
	switch dst.Type().Elem() {
	case reflect.TypeOf(""):
		items, err := stringOrList(raw, fs.opts.split, "values")
		if err != nil {
			return err
		}
		if len(items) == 0 {
			dst.SetZero()
			return nil
		}
		out := dst.Interface().([]string)
		for _, it := range items {
			it, err := vc.expand(it)
			if err != nil {
				return err
			}
			if err := checkString(fs.check, it); err != nil {
				return err
			}
			out = append(out, it)
		}
		dst.Set(reflect.ValueOf(out))
		return nil
	case reflect.TypeOf(time.Duration(0)):
		var items []any
		switch v := raw.(type) {
		case []any:
			items = v
		case string:
			if strings.TrimSpace(v) == "" {
				items = nil
			} else {
				items = []any{v}
			}
		default:
			items = []any{v}
		}
		if len(items) == 0 {
			dst.SetZero()
			return nil
		}
		out := dst.Interface().([]time.Duration)
		for _, it := range items {
			d, err := durationFromTOML(it)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		dst.Set(reflect.ValueOf(out))
		return nil
	}
	return fmt.Errorf("internal: no decoder for %s", dst.Type())
}

func checkEnum(s string, values []string) error {
	for _, v := range values {
		if v == s {
			return nil
		}
	}
	msg := fmt.Sprintf("expected one of %s, got %q", strings.Join(values, ", "), s)
	if near, ok := Nearest(s, values); ok {
		msg += fmt.Sprintf(" (did you mean '%s'?)", near)
	}
	return errors.New(msg)
}

// checkString validates a string value by the field's check tag.
func checkString(check, s string) error {
	switch check {
	case "":
		return nil
	case "abs-path":
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("%q is not an absolute path", s)
		}
	case "unit-name", "unit-names":
		n, err := ParseName(s)
		if err != nil {
			return err
		}
		if n.IsTemplate {
			return fmt.Errorf("%q is a template: name an instance (%s)", s, n.WithInstance("INSTANCE"))
		}
	case "url":
		for _, scheme := range []string{"http://", "https://", "file:", "info:", "man:"} {
			if strings.HasPrefix(s, scheme) {
				return nil
			}
		}
		return fmt.Errorf("%q is not a URL (http://, https://, file:, info:, man:)", s)
	case "user":
		return validUserName(s)
	case "instance":
		for i := 0; i < len(s); i++ {
			if !isNameChar(s[i]) && s[i] != '@' {
				return fmt.Errorf("invalid instance %q: character %q not allowed", s, s[i])
			}
		}
	case "cpuset":
		return validCPUSet(s)
	case "env-name":
		if !validEnvName(s) {
			return fmt.Errorf("invalid environment variable name %q", s)
		}
	case "listen":
		return checkListenAddress(s, true)
	case "listen-unix":
		return checkListenAddress(s, false)
	case "netlink":
		f := strings.Fields(s)
		if len(f) == 0 || len(f) > 2 {
			return fmt.Errorf("expected \"FAMILY [GROUP]\", got %q", s)
		}
		if len(f) == 2 {
			if _, err := strconv.ParseUint(f[1], 10, 32); err != nil {
				return fmt.Errorf("netlink group %q is not a number", f[1])
			}
		}
	case "fdname":
		if len(s) > 255 || strings.ContainsAny(s, ":") {
			return fmt.Errorf("file descriptor name %q: at most 255 characters, no ':'", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] > 0x7e {
				return fmt.Errorf("file descriptor name %q: only printable ASCII without spaces", s)
			}
		}
	case "rel-path":
		return checkRelativePath(s)
	case "nonempty":
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("empty value")
		}
	default:
		return fmt.Errorf("internal: unknown check %q", check)
	}
	return nil
}

// checkListenAddress checks the syntax of a socket address: an absolute
// path, an abstract name "@name", and with inet also a port, "ADDR:PORT",
// "[IPV6]:PORT" or "vsock:CID:PORT".
func checkListenAddress(s string, inet bool) error {
	switch {
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "@") && len(s) > 1:
		if len(s) > 107 {
			return fmt.Errorf("unix socket address %q longer than 107 bytes", s)
		}
		return nil
	case !inet:
		return fmt.Errorf("%q is not a unix socket path or @abstract name", s)
	case strings.HasPrefix(s, "vsock:"):
		return nil
	}
	port := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host := s[:i]
		port = s[i+1:]
		if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") || host == "" {
			return fmt.Errorf("address %q: bad host part %q", s, host)
		}
		if strings.Count(host, ":") > 0 && !strings.HasPrefix(host, "[") {
			return fmt.Errorf("address %q: write IPv6 addresses in brackets, [::1]:80", s)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("address %q: expected a port 1..65535, a path, or @abstract", s)
	}
	return nil
}

// checkRelativePath accepts a normalized relative path ("foo", "foo/bar"),
// as systemd's RuntimeDirectory= and friends want: no leading '/', no
// "." or ".." component, no empty component.
func checkRelativePath(s string) error {
	if s == "" || strings.HasPrefix(s, "/") {
		return fmt.Errorf("%q is not a relative path (the directory below /run, /var/lib, ...)", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("%q is not a normalized relative path (no empty, \".\" or \"..\" component)", s)
		}
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%q contains a NUL byte", s)
	}
	return nil
}
