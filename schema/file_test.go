package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/schema"
)

// accountFile describes the Account type of DESIGN.md (declared in
// schema_test.go) as a schema file.
const accountFile = `{
  "type": "filetest.Account",
  "description": "the Account of DESIGN.md",
  "fields": [
    {"name": "id",      "type": "string", "share": ["financial-service", "analytics-service"]},
    {"name": "owner",   "type": "string", "share": ["financial-service"], "sensitive": "random"},
    {"name": "ssn",     "type": "string", "share": ["financial-service"], "sensitive": "deterministic",
     "validate": "required,len=9,numeric"},
    {"name": "balance", "type": "number", "share": ["*"]},
    {"name": "notes",   "type": "string"}
  ]
}`

func TestParseFileMatchesStructTags(t *testing.T) {
	f, err := schema.ParseFile([]byte(accountFile))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "filetest.Account" || f.Plan.Name != "filetest.Account" {
		t.Fatalf("name %q, plan name %q", f.Name, f.Plan.Name)
	}
	// For returns the named plan from now on: fieldcrypt calls For.
	p, err := schema.For(f.Type)
	if err != nil || p != f.Plan {
		t.Fatalf("For after ParseFile: %v, same plan %v", err, p == f.Plan)
	}
	services := []string{"financial-service", "analytics-service", "billing"}
	fromFile, err := schema.Report([]reflect.Type{f.Type}, services)
	if err != nil {
		t.Fatal(err)
	}
	fromGo, err := schema.Report([]reflect.Type{reflect.TypeFor[Account]()}, services)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile.Rows) != len(fromGo.Rows) {
		t.Fatalf("rows: file %d, Go %d", len(fromFile.Rows), len(fromGo.Rows))
	}
	for i := range fromGo.Rows {
		want := strings.Replace(fromGo.Rows[i].Path, "Account.", "filetest.Account.", 1)
		if fromFile.Rows[i].Path != want || !reflect.DeepEqual(fromFile.Rows[i].Modes, fromGo.Rows[i].Modes) {
			t.Errorf("row %d: file %v %v, Go %v %v", i, fromFile.Rows[i].Path, fromFile.Rows[i].Modes, want, fromGo.Rows[i].Modes)
		}
	}
	for _, name := range []string{"id", "owner", "ssn", "balance", "notes"} {
		var found *schema.Field
		for _, fl := range f.Plan.Root.Fields {
			if fl.Name == name {
				found = fl
			}
		}
		if found == nil {
			t.Fatalf("no field %q", name)
		}
		if name == "ssn" && found.Validate != "required,len=9,numeric" {
			t.Errorf("ssn validate = %q", found.Validate)
		}
	}
	// Documents decode into the built type with encoding/json.
	v := reflect.New(f.Type)
	if err := json.Unmarshal([]byte(`{"id":"a","owner":"Jane","ssn":"123456789","balance":1.5,"notes":"n"}`), v.Interface()); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v.Interface())
	if string(out) != `{"id":"a","owner":"Jane","ssn":"123456789","balance":1.5,"notes":"n"}` {
		t.Fatalf("round trip: %s", out)
	}
}

func TestParseFileTypes(t *testing.T) {
	f, err := schema.ParseFile([]byte(`{
	  "type": "filetest.Types",
	  "fields": [
	    {"name": "s", "type": "string", "share": ["*"], "omitempty": true},
	    {"name": "n", "type": "number", "share": ["*"]},
	    {"name": "i", "type": "integer", "share": ["*"]},
	    {"name": "b", "type": "boolean", "share": ["*"]},
	    {"name": "t", "type": "time", "share": ["*"]},
	    {"name": "by", "type": "bytes", "share": ["*"], "sensitive": "random"},
	    {"name": "r", "type": "raw", "share": ["*"], "omitzero": true},
	    {"name": "p", "type": "string", "share": ["*"], "nullable": true},
	    {"name": "o", "type": "object", "share": ["a"], "fields": [{"name": "x", "type": "string", "share": ["a"]}]},
	    {"name": "l", "type": "array", "share": ["a"], "items": {"type": "array", "items": {"type": "Owner"}}},
	    {"name": "m", "type": "map", "share": ["a"], "values": {"type": "Owner", "nullable": true}},
	    {"name": "o2", "type": "Owner", "share": ["a"]}
	  ],
	  "types": {"Owner": {"fields": [{"name": "name", "type": "string", "share": ["a"], "sensitive": "deterministic"}]}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	st := f.Type
	owner := reflect.StructOf([]reflect.StructField{{Name: "F0_name", Type: reflect.TypeFor[string](),
		Tag: `json:"name" share:"a" sensitive:"deterministic"`}})
	want := map[string]reflect.Type{
		"s": reflect.TypeFor[string](), "n": reflect.TypeFor[float64](), "i": reflect.TypeFor[int64](),
		"b": reflect.TypeFor[bool](), "t": reflect.TypeFor[time.Time](), "by": reflect.TypeFor[[]byte](),
		"r": reflect.TypeFor[json.RawMessage](), "p": reflect.TypeFor[*string](),
		"l": reflect.SliceOf(reflect.SliceOf(owner)), "m": reflect.MapOf(reflect.TypeFor[string](), reflect.PointerTo(owner)),
		"o2": owner,
	}
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if w, ok := want[name]; ok && sf.Type != w {
			t.Errorf("%s: type %v, want %v", name, sf.Type, w)
		}
		switch name {
		case "s":
			if opts != "omitempty" {
				t.Errorf("s: json options %q", opts)
			}
		case "r":
			if opts != "omitzero" {
				t.Errorf("r: json options %q", opts)
			}
		case "by":
			if sf.Tag.Get("sensitive") != "random" || sf.Tag.Get("share") != "*" {
				t.Errorf("by: tag %q", sf.Tag)
			}
		}
	}
	e, err := schema.Report([]reflect.Type{st}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range e.Rows {
		paths = append(paths, r.Path)
	}
	got := strings.Join(paths, " ")
	for _, w := range []string{"filetest.Types.o.x", "filetest.Types.l[][].name", "filetest.Types.m{}.name", "filetest.Types.o2.name"} {
		if !strings.Contains(got, w) {
			t.Errorf("report lacks %s: %s", w, got)
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	wrap := func(fields string) string { return `{"type":"filetest.E","fields":[` + fields + `]}` }
	tests := []struct {
		name, file             string
		pointer, field, member string
	}{
		{"not json", `{"type":`, "", "", ""},
		{"not object", `[1]`, "", "", ""},
		{"trailing", `{"type":"x.Y","fields":[]} {}`, "", "", ""},
		{"missing type", `{"fields":[]}`, "", "", "type"},
		{"bad type name", `{"type":"a b","fields":[]}`, "", "", "type"},
		{"missing fields", `{"type":"x.Y"}`, "", "", "fields"},
		{"unknown top member", `{"type":"x.Y","fields":[],"field":[]}`, "", "", "field"},
		{"typo sensitive", wrap(`{"name":"a","type":"string","share":["x"],"sensitve":"random"}`), "/fields/0", "a", "sensitve"},
		{"duplicate member", wrap(`{"name":"a","type":"string","share":["x"],"sensitive":"random","sensitive":"random"}`), "/fields/0", "", "sensitive"},
		{"unknown sensitive", wrap(`{"name":"a","type":"string","share":["x"],"sensitive":"randm"}`), "/fields/0", "a", "sensitive"},
		{"sensitive without share", wrap(`{"name":"a","type":"string","sensitive":"random"}`), "/fields/0", "a", "sensitive"},
		{"share not list", wrap(`{"name":"a","type":"string","share":"x"}`), "/fields/0", "a", "share"},
		{"share empty", wrap(`{"name":"a","type":"string","share":[]}`), "/fields/0", "a", "share"},
		{"share bad name", wrap(`{"name":"a","type":"string","share":["Financial"]}`), "/fields/0", "a", "share"},
		{"share twice", wrap(`{"name":"a","type":"string","share":["x","x"]}`), "/fields/0", "a", "share"},
		{"share wildcard mixed", wrap(`{"name":"a","type":"string","share":["*","x"]}`), "/fields/0", "a", "share"},
		{"missing name", wrap(`{"type":"string"}`), "/fields/0", "", "name"},
		{"bad json name", wrap(`{"name":"a,b","type":"string"}`), "/fields/0", "a,b", "name"},
		{"reserved name", wrap(`{"name":"$enc","type":"string","share":["x"]}`), "/fields/0", "$enc", "name"},
		{"two fields one name", wrap(`{"name":"a","type":"string"},{"name":"a","type":"number"}`), "/fields/1", "a", "name"},
		{"unknown type", wrap(`{"name":"a","type":"float"}`), "/fields/0", "a", "type"},
		{"fields on string", wrap(`{"name":"a","type":"string","fields":[]}`), "/fields/0", "a", "fields"},
		{"array without items", wrap(`{"name":"a","type":"array"}`), "/fields/0", "a", "items"},
		{"item with share", wrap(`{"name":"a","type":"array","items":{"type":"string","share":["x"]}}`), "/fields/0/items", "a[]", "share"},
		{"nested error", wrap(`{"name":"o","type":"object","share":["x"],"fields":[{"name":"b","type":"string","share":["x"],"sensitive":"nope"}]}`),
			"/fields/0/fields/0", "o.b", "sensitive"},
		{"omitempty not bool", wrap(`{"name":"a","type":"string","omitempty":"yes"}`), "/fields/0", "a", "omitempty"},
		{"recursive", `{"type":"x.R","fields":[{"name":"n","type":"Node","share":["x"]}],
			"types":{"Node":{"fields":[{"name":"kids","type":"array","share":["x"],"items":{"type":"Node"}}]}}}`,
			"/types/Node", "n.kids[]", "type"},
		{"mutually recursive", `{"type":"x.R","fields":[{"name":"a","type":"A"}],
			"types":{"A":{"fields":[{"name":"b","type":"B"}]},"B":{"fields":[{"name":"a","type":"A","nullable":true}]}}}`,
			"/types/A", "a.b.a", "type"},
		{"bad definition name", `{"type":"x.R","fields":[],"types":{"string":{"fields":[]}}}`, "/types/string", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.ParseFile([]byte(tc.file))
			if !errors.Is(err, schema.ErrFile) {
				t.Fatalf("err = %v, want ErrFile", err)
			}
			var fe *schema.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %T, want *FileError", err)
			}
			if fe.Pointer != tc.pointer || fe.Field != tc.field || fe.Member != tc.member {
				t.Fatalf("got pointer %q field %q member %q, want %q %q %q (%v)",
					fe.Pointer, fe.Field, fe.Member, tc.pointer, tc.field, tc.member, err)
			}
		})
	}
}

func TestForNamed(t *testing.T) {
	typ := reflect.StructOf([]reflect.StructField{{Name: "A", Type: reflect.TypeFor[string](), Tag: `json:"a" share:"x"`}})
	// Without a name the type cannot be planned: its String() has spaces.
	if _, err := schema.For(typ); !errors.Is(err, schema.ErrTag) {
		t.Fatalf("For(unnamed) = %v, want ErrTag", err)
	}
	p, err := schema.ForNamed(typ, "named.A")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "named.A" {
		t.Fatalf("name %q", p.Name)
	}
	if p2, err := schema.For(typ); err != nil || p2 != p {
		t.Fatalf("For after ForNamed: %v", err)
	}
	if p2, err := schema.ForNamed(reflect.PointerTo(typ), "named.A"); err != nil || p2 != p {
		t.Fatalf("ForNamed again: %v", err)
	}
	var te *schema.TagError
	if _, err := schema.ForNamed(typ, "named.B"); !errors.As(err, &te) {
		t.Fatalf("another name: %v, want *TagError", err)
	}
	if _, err := schema.ForNamed(reflect.TypeFor[Account](), "x.Y"); !errors.As(err, &te) {
		t.Fatalf("named type: %v, want *TagError", err)
	}
	if _, err := schema.ForNamed(typ, "has space"); !errors.As(err, &te) {
		t.Fatalf("invalid name: %v, want *TagError", err)
	}
	if _, err := schema.ForNamed(reflect.TypeFor[int](), "x.Y"); !errors.Is(err, schema.ErrNotStruct) {
		t.Fatalf("int: %v", err)
	}
	bad := reflect.StructOf([]reflect.StructField{{Name: "A", Type: reflect.TypeFor[string](), Tag: `share:"x" sensitve:"random"`}})
	if _, err := schema.ForNamed(bad, "x.Bad"); !errors.As(err, &te) || te.Field != "A" {
		t.Fatalf("bad tag: %v", err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(accountFile))
	f.Add([]byte(`{"type":"x.R","fields":[{"name":"n","type":"Node"}],"types":{"Node":{"fields":[{"name":"k","type":"array","items":{"type":"Node"}}]}}}`))
	f.Add([]byte(`{"type":"x.M","fields":[{"name":"m","type":"map","share":["*"],"values":{"type":"object","fields":[]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := schema.ParseFile(data)
		if err != nil {
			if !errors.Is(err, schema.ErrFile) && !errors.Is(err, schema.ErrTag) {
				t.Fatalf("error %v matches neither ErrFile nor ErrTag", err)
			}
			return
		}
		if file.Plan == nil || file.Plan.Name != file.Name || file.Type.Kind() != reflect.Struct {
			t.Fatalf("inconsistent result for %q", data)
		}
	})
}

// A schema file for a producer that is not written in Go: the struct type
// it describes is planned like a Go type with the same tags.
func ExampleParseFile() {
	f, err := schema.ParseFile([]byte(`{
	  "type": "example.Payment",
	  "fields": [
	    {"name": "id",   "type": "string", "share": ["*"]},
	    {"name": "card", "type": "string", "share": ["billing"], "sensitive": "random"}
	  ]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	e, _ := schema.Report([]reflect.Type{f.Type}, []string{"billing", "analytics"})
	fmt.Print(e.Markdown())
	_, err = schema.ParseFile([]byte(`{"type": "example.Typo", "fields": [
	    {"name": "card", "type": "string", "share": ["billing"], "sensitve": "random"}]}`))
	fmt.Println(err)
	// Output:
	// | Field | Go type | billing | analytics |
	// |---|---|---|---|
	// | example.Payment.id | string | clear | clear |
	// | example.Payment.card | string | random | stripped |
	// schema: schema file: field "card" (at /fields/0): sensitve: unknown member (allowed here: name, type, share, sensitive, validate, omitempty, omitzero, nullable, fields, items, values, description); members are case-sensitive
}
