// Package codegen writes internal/protocol's codecs from its message types, so that each
// wire model is declared once: its Go struct, with a directive comment and field tags, is
// the only source of its wire name, field order, required fields, enums, defaults and
// channel unions. `go generate ./internal/protocol` runs it (protogen); a test in
// internal/protocol regenerates and fails if the committed file differs.
//
// A model is a struct whose doc comment holds a directive line:
//
//	//wire:message Union…   a message of the named channel unions (ValidatorToMiner,
//	                        MinerToValidator, MinerToExecutor, ExecutorToMiner,
//	                        FacilitatorToValidator, ValidatorToFacilitator); its
//	                        message_type is the type's name, written first unless a blank
//	                        field tagged `wire:"message_type"` places it
//	//wire:model            a nested model (no message_type)
//	//wire:union KEY Enum   a discriminated union of the models its pointer fields point to,
//	                        told apart by their literal KEY (of type Enum): Type, the
//	                        member dispatch (decodeMember, encodeMember), decode, encode
//	                        and JSON methods are generated; which members a position
//	                        allows is passed in by hand-written callers
//
//	//wire:enum             a string enum, strict (unknown values are errors) unless "open"
//	                        (they decode to its "unknown" constant); its values are the
//	                        constants of its type, in declaration order; "name=N" names it
//	                        in errors. Its table, Values and Parse are generated.
//
// followed by options: "forbid" (unknown keys are errors; default: dropped) and "receipt"
// (a receipt payload: ReceiptType, Header and BlobForSigning are generated too).
//
// Each exported field is one wire key, in declaration order, tagged
// `wire:"name[,option…]"`; a field without a tag is not on the wire. Options:
//
//	optional      may be absent on input (pydantic default); every key is always written
//	default=V     the value an absent key takes ([] for lists; an enum's wire string)
//	id            a string that must not be empty (job identifiers)
//	job           the field names the job the message is about (JobUUIDOf)
//	object, any   json.RawMessage: a JSON object or any JSON value
//	notnull       json.RawMessage that may not be null (written as {} when empty)
//	alias=K       K is accepted on input for this key when it is absent (legacy name)
//	via=X         decoded by hand-written decodeX(*reader, *T) error, written by encodeX(*encoder, T)
//
// Blank fields `_ struct{}` tagged `wire:"key,literal=V"` are constant keys (type,
// volume_type, receipt_type, …); an OrderedMap[json.RawMessage] field tagged
// `wire:",extra"` keeps unknown keys (pydantic extra="allow").
package codegen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// GeneratedFile is the file Generate writes, relative to the package directory.
const GeneratedFile = "codec_gen.go"

// kind is how a key's value is read and written.
type kind string

const (
	kLiteral   kind = "literal"
	kStr       kind = "str"
	kOptStr    kind = "optstr"
	kInt       kind = "int"
	kInt64     kind = "int64"
	kOptInt    kind = "optint"
	kFloat     kind = "float"
	kBool      kind = "bool"
	kStrList   kind = "strlist"
	kIntList   kind = "intlist"
	kTimestamp kind = "timestamp"
	kRaw       kind = "raw"
	kStrMap    kind = "strmap"
	kOptStrMap kind = "optstrmap"
	kEnum      kind = "enum"
	kObj       kind = "obj"
	kOptObj    kind = "optobj"
	kList      kind = "list"
	kVia       kind = "via"
	kExtra     kind = "extra" // the unknown keys of an extra="allow" model
)

// key is one wire key of a model.
type key struct {
	wire     string
	field    string // Go field; "" for a literal
	goType   string
	kind     kind
	literal  string
	required bool
	id       bool
	job      bool
	def      string
	raw      string // rawObject or rawAny
	notNull  bool
	via      string
	alias    string // legacy input name of this key
}

// model is one type the generator writes code for.
type model struct {
	name    string
	form    string   // "message", "model", "union" or "enum"
	unions  []string // a message's channel unions
	forbid  bool
	receipt bool
	keys    []key
	extra   string // Go field holding unknown keys; "" when they are dropped or forbidden

	// A union's discriminator key and its enum type, and its members: Go field → model.
	tagKey, tagEnum string
	members         [][2]string

	// An enum's constants (Go name, wire value) in declaration order, whether unknown
	// values decode to its "unknown" constant, and its name in errors.
	values   [][2]string
	open     bool
	enumName string
}

// unions are the channel unions a //wire:message may name (the Union constants of
// internal/protocol, without their prefix), with what their frames are, for the comment of
// each Decode function.
var unions = []struct{ name, frames string }{
	{"ValidatorToMiner", "a validator → miner frame"},
	{"MinerToValidator", "a miner → validator frame"},
	{"MinerToExecutor", "a miner → executor frame"},
	{"ExecutorToMiner", "an executor → miner frame"},
	{"FacilitatorToValidator", "a facilitator → validator frame (one without message_type is a *Response)"},
	{"ValidatorToFacilitator", "a validator → facilitator frame"},
}

func isUnion(name string) bool {
	return slices.ContainsFunc(unions, func(u struct{ name, frames string }) bool { return u.name == name })
}

// parse reads the package in dir (except test files and the generated file) and returns its
// models in file and declaration order.
func parse(dir string) ([]model, error) {
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var files []*ast.File
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasSuffix(base, "_test.go") || base == GeneratedFile {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, base, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	p := &pkg{enums: map[string]bool{}, structs: map[string]bool{}, consts: map[string][][2]string{}}
	for _, f := range files {
		p.collectTypes(f)
	}
	var models []model
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				dir, ok := directive(doc)
				if !ok {
					continue
				}
				m, err := p.model(ts, dir)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", fset.Position(ts.Pos()), ts.Name.Name, err)
				}
				models = append(models, m)
			}
		}
	}
	return models, nil
}

// pkg knows the package's type declarations.
type pkg struct {
	enums   map[string]bool // type X string
	structs map[string]bool
	consts  map[string][][2]string // type → its constants (name, wire value), in order
}

func (p *pkg) collectTypes(f *ast.File) {
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if ok && gd.Tok == token.CONST {
			p.collectConsts(gd)
		}
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			switch t := ts.Type.(type) {
			case *ast.Ident:
				if t.Name == "string" && ts.Assign == 0 {
					p.enums[ts.Name.Name] = true
				}
			case *ast.StructType:
				p.structs[ts.Name.Name] = true
			}
		}
	}
}

// collectConsts notes the string constants declared with an explicit type.
func (p *pkg) collectConsts(gd *ast.GenDecl) {
	for _, spec := range gd.Specs {
		vs := spec.(*ast.ValueSpec)
		t, ok := vs.Type.(*ast.Ident)
		if !ok {
			continue
		}
		for i, name := range vs.Names {
			if i >= len(vs.Values) {
				break
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, err := strconv.Unquote(lit.Value)
				if err == nil {
					p.consts[t.Name] = append(p.consts[t.Name], [2]string{name.Name, v})
				}
			}
		}
	}
}

// directive returns the words of a type's //wire: line.
func directive(doc *ast.CommentGroup) ([]string, bool) {
	if doc == nil {
		return nil, false
	}
	for _, c := range doc.List {
		if rest, ok := strings.CutPrefix(c.Text, "//wire:"); ok {
			return strings.Fields(rest), true
		}
	}
	return nil, false
}

func (p *pkg) model(ts *ast.TypeSpec, dir []string) (model, error) {
	m := model{name: ts.Name.Name, form: dir[0]}
	if m.form == "enum" {
		return p.enum(m, dir[1:])
	}
	if m.form == "union" {
		if len(dir) != 3 {
			return m, fmt.Errorf("//wire:union takes the discriminator key and its enum type")
		}
		m.tagKey, m.tagEnum = dir[1], dir[2]
		dir = dir[:1]
	}
	for _, w := range dir[1:] {
		switch {
		case w == "forbid":
			m.forbid = true
		case w == "receipt":
			m.receipt = true
		case m.form == "message" && isUnion(w):
			m.unions = append(m.unions, w)
		default:
			return m, fmt.Errorf("unknown directive word %q", w)
		}
	}
	switch m.form {
	case "message":
		if len(m.unions) == 0 {
			return m, fmt.Errorf("//wire:message names no union")
		}
	case "model", "union", "enum":
	default:
		return m, fmt.Errorf("unknown directive //wire:%s (message, model or union)", m.form)
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return m, fmt.Errorf("//wire: on a type that is not a struct")
	}
	if m.form == "union" {
		for _, f := range st.Fields.List {
			t := types.ExprString(f.Type)
			if len(f.Names) != 1 || !strings.HasPrefix(t, "*") || !p.structs[t[1:]] {
				return m, fmt.Errorf("a union's fields must each point to a member model")
			}
			m.members = append(m.members, [2]string{f.Names[0].Name, t[1:]})
		}
		return m, nil
	}
	placed := false
	for _, f := range st.Fields.List {
		tag := ""
		if f.Tag != nil {
			tag = reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("wire")
		}
		if tag == "" {
			continue
		}
		if len(f.Names) != 1 {
			return m, fmt.Errorf("a tagged field must declare one name")
		}
		name := f.Names[0].Name
		k, err := p.key(name, types.ExprString(f.Type), tag)
		if err != nil {
			return m, fmt.Errorf("field %s: %w", name, err)
		}
		switch {
		case k.kind == kExtra:
			m.extra = name
			continue
		case k.wire == "message_type" && name == "_":
			if m.form != "message" {
				return m, fmt.Errorf("a message_type key on a model that is not a message")
			}
			k.kind, k.literal, placed = kLiteral, m.name, true
		}
		m.keys = append(m.keys, k)
	}
	if m.form == "message" && !placed {
		m.keys = append([]key{{wire: "message_type", kind: kLiteral, literal: m.name}}, m.keys...)
	}
	if m.extra != "" && m.forbid {
		return m, fmt.Errorf("a model cannot both keep and forbid unknown keys")
	}
	return m, nil
}

func (p *pkg) enum(m model, opts []string) (model, error) {
	m.enumName = m.name
	for _, o := range opts {
		switch name, val, _ := strings.Cut(o, "="); name {
		case "open":
			m.open = true
		case "name":
			m.enumName = val
		default:
			return m, fmt.Errorf("unknown enum option %q", o)
		}
	}
	if !p.enums[m.name] {
		return m, fmt.Errorf("//wire:enum on a type that is not a string")
	}
	m.values = p.consts[m.name]
	if len(m.values) == 0 {
		return m, fmt.Errorf("enum %s has no constants", m.name)
	}
	if m.open && !slices.ContainsFunc(m.values, func(v [2]string) bool { return v[1] == "unknown" }) {
		return m, fmt.Errorf("an open enum needs a constant with the value \"unknown\"")
	}
	return m, nil
}

// key reads one field's tag.
func (p *pkg) key(field, goType, tag string) (key, error) {
	parts := strings.Split(tag, ",")
	k := key{wire: parts[0], field: field, goType: goType, required: true}
	for _, opt := range parts[1:] {
		name, val, _ := strings.Cut(opt, "=")
		switch name {
		case "optional":
			k.required = false
		case "id":
			k.id = true
		case "job":
			k.job = true
		case "default":
			k.def, k.required = val, false
		case "object":
			k.raw = "rawObject"
		case "any":
			k.raw = "rawAny"
		case "notnull":
			k.notNull = true
		case "alias":
			k.alias = val
		case "via":
			k.via = val
		case "literal":
			k.literal = val
		case "extra":
			if goType != "OrderedMap[json.RawMessage]" || k.wire != "" {
				return k, fmt.Errorf(`",extra" goes on an OrderedMap[json.RawMessage] field without a name`)
			}
			return key{field: field, kind: kExtra}, nil
		default:
			return k, fmt.Errorf("unknown option %q", opt)
		}
	}
	if k.wire == "" {
		return k, fmt.Errorf("no wire name")
	}
	if field == "_" {
		if k.literal == "" && k.wire != "message_type" {
			return k, fmt.Errorf("a blank field must be a literal (literal=VALUE)")
		}
		k.field, k.kind, k.required = "", kLiteral, false
		return k, nil
	}
	if k.via != "" {
		k.kind = kVia
		return k, nil
	}
	var err error
	k.kind, err = p.kindOf(goType, k)
	return k, err
}

func (p *pkg) kindOf(t string, k key) (kind, error) {
	switch t {
	case "string":
		return kStr, nil
	case "*string":
		return kOptStr, nil
	case "int":
		return kInt, nil
	case "int64":
		return kInt64, nil
	case "*int":
		return kOptInt, nil
	case "float64":
		return kFloat, nil
	case "bool":
		return kBool, nil
	case "[]string":
		return kStrList, nil
	case "[]int":
		return kIntList, nil
	case "Timestamp":
		return kTimestamp, nil
	case "json.RawMessage":
		if k.raw == "" {
			return "", fmt.Errorf("json.RawMessage needs object or any")
		}
		return kRaw, nil
	case "OrderedMap[string]":
		return kStrMap, nil
	case "*OrderedMap[string]":
		return kOptStrMap, nil
	}
	switch {
	case p.enums[t]:
		return kEnum, nil
	case p.structs[t]:
		return kObj, nil
	case strings.HasPrefix(t, "*") && p.structs[t[1:]]:
		return kOptObj, nil
	case strings.HasPrefix(t, "[]") && p.structs[t[2:]]:
		return kList, nil
	}
	return "", fmt.Errorf("type %s has no codec (use via=)", t)
}
