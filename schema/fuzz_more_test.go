package schema_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"testing"

	"github.com/lifenavigator/crossservice/schema"
	"github.com/lifenavigator/crossservice/testdata"
)

// seedSchemaFiles returns the schema files of testdata/schema/files, and
// fails when there are none (a glob that finds nothing must not pass).
func seedSchemaFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, s := range seedSchemaFileList(tb) {
		out[s.name] = s.data
	}
	return out
}

type namedSeed struct {
	name string
	data []byte
}

// seedSchemaFileList is seedSchemaFiles in file name order.
func seedSchemaFileList(tb testing.TB) []namedSeed {
	tb.Helper()
	names, err := fs.Glob(testdata.Schema, "schema/files/*.json")
	if err != nil {
		tb.Fatal(err)
	}
	var out []namedSeed
	for _, n := range names {
		b, err := testdata.Schema.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, namedSeed{n, b})
	}
	if len(out) < 5 {
		tb.Fatalf("only %d seed schema files loaded from testdata/schema/files", len(out))
	}
	return out
}

// The seeds say what they are: the valid ones parse, the others do not.
func TestSeedSchemaFiles(t *testing.T) {
	valid := map[string]bool{"account.json": true, "scalars.json": true, "nested.json": true, "empty.json": true}
	for name, b := range seedSchemaFiles(t) {
		_, err := schema.ParseFile(b)
		base := name[len("schema/files/"):]
		if valid[base] != (err == nil) {
			t.Errorf("%s: ParseFile: %v", base, err)
		}
		if err != nil && !errors.Is(err, schema.ErrFile) {
			t.Errorf("%s: %v is not ErrFile", base, err)
		}
	}
}

// FuzzParseFileModes parses mutated schema files and checks every accepted
// one against an independent reading of the same JSON: the plan has
// exactly the file's fields, in order, at every level, each of the type
// the file names, and every field reaches every service exactly as its
// share and sensitive members say (a sensitive field is never clear, an
// unshared one never sent). Refusals must be ErrFile or ErrTag.
func FuzzParseFileModes(f *testing.F) {
	for _, s := range seedSchemaFileList(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := schema.ParseFile(data)
		if err != nil {
			if !errors.Is(err, schema.ErrFile) && !errors.Is(err, schema.ErrTag) {
				t.Fatalf("error %v matches neither ErrFile nor ErrTag", err)
			}
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("ParseFile accepted what encoding/json refuses: %v", err)
		}
		if file.Name != doc["type"] || file.Plan.Name != file.Name {
			t.Fatalf("type name %q, plan name %q, file says %v", file.Name, file.Plan.Name, doc["type"])
		}
		types, _ := doc["types"].(map[string]any)
		fields, ok := doc["fields"].([]any)
		if !ok {
			t.Fatalf("accepted without a list of fields")
		}
		o := &fileOracle{t: t, types: types}
		o.object(fields, file.Plan.Root, "")
	})
}

type fileOracle struct {
	t     *testing.T
	types map[string]any
	steps int
}

func (o *fileOracle) object(fields []any, n *schema.Node, path string) {
	o.steps++
	if o.steps > 10000 {
		o.t.Fatalf("%s: the oracle does not terminate (a recursive type was accepted?)", path)
	}
	if n == nil || n.Kind != schema.Struct {
		o.t.Fatalf("%s: object planned as %v", path, n)
	}
	if len(n.Fields) != len(fields) {
		o.t.Fatalf("%s: %d fields in the file, %d in the plan", path, len(fields), len(n.Fields))
	}
	for i, raw := range fields {
		fd, _ := raw.(map[string]any)
		name, _ := fd["name"].(string)
		pf := n.Fields[i]
		if pf.Name != name {
			o.t.Fatalf("%s: field %d is %q in the plan, %q in the file", path, i, pf.Name, name)
		}
		fpath := path + "/" + name
		var share []string
		for _, s := range asList(fd["share"]) {
			share = append(share, s.(string))
		}
		sens, _ := fd["sensitive"].(string)
		for _, r := range append([]string{"a", "zz", "financial-service", "analytics-service"}, share...) {
			if r == "*" {
				continue
			}
			want := schema.Stripped
			if slices.Contains(share, "*") || slices.Contains(share, r) {
				switch sens {
				case "random":
					want = schema.Random
				case "deterministic":
					want = schema.Deterministic
				default:
					want = schema.Clear
				}
			}
			if got := pf.ModeFor(r); got != want {
				o.t.Fatalf("%s reaches %s %v, the file says %v", fpath, r, got, want)
			}
		}
		if v, _ := fd["validate"].(string); v != pf.Validate {
			o.t.Fatalf("%s: validate %q, the file says %q", fpath, pf.Validate, v)
		}
		if len(share) > 0 {
			o.value(fd, pf.Node, fpath)
		} else if pf.Node != nil {
			o.t.Fatalf("%s: an unshared field was planned", fpath)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func (o *fileOracle) value(desc map[string]any, n *schema.Node, path string) {
	if n == nil {
		o.t.Fatalf("%s: no node", path)
	}
	if desc["nullable"] == true {
		if n.Kind != schema.Pointer {
			o.t.Fatalf("%s: nullable planned as %v", path, n.Kind)
		}
		n = n.Elem
	}
	typ, _ := desc["type"].(string)
	kinds := map[string]schema.Kind{"string": schema.String, "number": schema.Float, "integer": schema.Int,
		"boolean": schema.Bool, "time": schema.JSON, "bytes": schema.Bytes, "raw": schema.JSON,
		"array": schema.Slice, "map": schema.Map, "object": schema.Struct}
	want, builtin := kinds[typ]
	if !builtin {
		want = schema.Struct
	}
	if n.Kind != want {
		o.t.Fatalf("%s: type %q planned as %v", path, typ, n.Kind)
	}
	switch typ {
	case "object":
		o.object(asList(desc["fields"]), n, path)
	case "array", "map":
		member := map[string]string{"array": "items", "map": "values"}[typ]
		item, ok := desc[member].(map[string]any)
		if !ok {
			o.t.Fatalf("%s: %s accepted without %q", path, typ, member)
		}
		o.value(item, n.Elem, path+"/*")
	default:
		if builtin {
			return
		}
		def, ok := o.types[typ].(map[string]any)
		if !ok {
			o.t.Fatalf("%s: type %q accepted but not defined", path, typ)
		}
		o.object(asList(def["fields"]), n, path)
	}
}
