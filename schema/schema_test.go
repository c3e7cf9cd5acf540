package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/lifenavigator/crossservice/schema"
)

// ---- types for the tag error table ----

type (
	typoSensitve struct {
		A string `share:"svc" sensitve:"random"`
	}
	typoShareUpper struct {
		A string `Share:"svc"`
	}
	typoShared struct {
		A string `shared:"svc"`
	}
	typoSenstive struct {
		A string `share:"svc" senstive:"random"`
	}
	typoSensUpper struct {
		A string `share:"svc" Sensitive:"random"`
	}
	typoSahre struct {
		A string `sahre:"svc"`
	}
	typoHomoglyph struct {
		A string `ѕhare:"svc"`
	} // Cyrillic dze
	typoSensitivty struct {
		A string `share:"svc" sensitivity:"random"`
	}
	unknownSensitive struct {
		A string `share:"svc" sensitive:"rand"`
	}
	upperSensitiveValue struct {
		A string `share:"svc" sensitive:"Random"`
	}
	emptySensitive struct {
		A string `share:"svc" sensitive:""`
	}
	sensitiveOptions struct {
		A string `share:"svc" sensitive:"random,deterministic"`
	}
	sensitiveNoShare struct {
		A string `sensitive:"random"`
	}
	emptyShare struct {
		A string `share:""`
	}
	dupService struct {
		A string `share:"svc,svc"`
	}
	invalidName struct {
		A string `share:"Financial"`
	}
	spaceName struct {
		A string `share:"svc, other"`
	}
	wildcardMixed struct {
		A string `share:"*,svc"`
	}
	trailingComma struct {
		A string `share:"svc,"`
	}
	doubleHyphen struct {
		A string `share:"a--b"`
	}
	dupShareKey struct {
		//lint:ignore SA5008 the duplicated tag is what this case tests
		A string `share:"svc" share:"other"`
	}
	dupSensitiveKey struct {
		//lint:ignore SA5008 the duplicated tag is what this case tests
		A string `share:"svc" sensitive:"random" sensitive:"deterministic"`
	}
	unexportedShared struct {
		//lint:ignore U1000 a tagged unexported field is what this case tests
		a string `share:"svc"`
	}
	unexportedTypo struct {
		//lint:ignore U1000 a tagged unexported field is what this case tests
		a string `sensitve:"random"`
	}
	jsonDashShared struct {
		A string `json:"-" share:"svc"`
	}
	embeddedInner    struct{ X string }
	embeddedPromoted struct {
		embeddedInner `share:"svc"`
	}
	quotedShared struct {
		A int `json:"a,string" share:"svc"`
	}
	chanShared struct {
		C chan int `share:"svc"`
	}
	funcSensitive struct {
		F func() `share:"svc" sensitive:"random"`
	}
	complexShared struct {
		C complex128 `share:"svc"`
	}
	unsafeShared struct {
		P unsafe.Pointer `share:"svc"`
	}
	anyShared struct {
		A any `share:"svc"`
	}
	sliceOfAnyShared struct {
		A []any `share:"svc"`
	}
	mapOfAnyShared struct {
		M map[string]any `share:"svc" sensitive:"random"`
	}
	structKeyShared struct {
		M map[struct{ K int }]int `share:"svc"`
	}
	ptrChanShared struct {
		P *[]chan int `share:"svc"`
	}
	leafWithTags struct {
		A string `share:"svc"`
	}
	ambA struct {
		Dup string `share:"svc"`
	}
	ambB           struct{ Dup string }
	ambiguousShare struct {
		ambA
		ambB
	}
	badInner struct {
		A string `share:"svc" sensitve:"random"`
	}
	nestedBad struct {
		In badInner `share:"svc"`
	}
	unexpPtrInner struct {
		A string `share:"svc"`
	}
	unexpPtrOuter struct {
		*unexpPtrInner
	}
	markerName struct {
		A string `json:"$enc" share:"svc"`
	}
	badTypeName struct {
		A string `share:"svc"`
	}
	unmarshalOnly struct{ A string }
	unmarshalUser struct {
		U unmarshalOnly `share:"svc"`
	}
)

func (leafWithTags) MarshalJSON() ([]byte, error)          { return []byte(`{}`), nil }
func (badTypeName) CrossServiceType() string               { return "has a space" }
func (*unmarshalOnly) UnmarshalJSON(b []byte) error        { return nil }
func typeOf[T any]() reflect.Type                          { return reflect.TypeFor[T]() }
func wantTagErr(t reflect.Type, field, tag string) tagWant { return tagWant{t, field, tag} }

type leafUser struct {
	L leafWithTags `share:"svc"`
}

func structWithTag(tag string) reflect.Type {
	return reflect.StructOf([]reflect.StructField{{Name: "A", Type: typeOf[string](), Tag: reflect.StructTag(tag)}})
}

var (
	malformedSpace  = structWithTag(`share:"svc" sensitive: "random"`)
	malformedComma  = structWithTag(`json:"a",share:"svc"`)
	malformedQuote  = structWithTag(`share:"svc`)
	malformedEscape = structWithTag(`share:"\q"`)
	// Go 1.26 names this member "A", Go 1.27 "bad": refused.
	badJSONName = structWithTag(`json:"bad\"name" share:"svc"`)
	// Refused on an unshared field too: it still takes part in name
	// resolution.
	badJSONUnshared = reflect.StructOf([]reflect.StructField{
		{Name: "A", Type: typeOf[string](), Tag: `share:"svc"`},
		{Name: "B", Type: typeOf[string](), Tag: `json:"b\\c"`},
	})
)

type tagWant struct {
	typ   reflect.Type
	field string
	tag   string
}

func TestTagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		want tagWant
	}{
		{"near miss sensitve", typeOf[typoSensitve](), wantTagErr(typeOf[typoSensitve](), "A", "sensitve")},
		{"near miss Share", typeOf[typoShareUpper](), wantTagErr(typeOf[typoShareUpper](), "A", "Share")},
		{"near miss shared", typeOf[typoShared](), wantTagErr(typeOf[typoShared](), "A", "shared")},
		{"near miss senstive", typeOf[typoSenstive](), wantTagErr(typeOf[typoSenstive](), "A", "senstive")},
		{"near miss Sensitive", typeOf[typoSensUpper](), wantTagErr(typeOf[typoSensUpper](), "A", "Sensitive")},
		{"near miss sahre", typeOf[typoSahre](), wantTagErr(typeOf[typoSahre](), "A", "sahre")},
		{"near miss homoglyph", typeOf[typoHomoglyph](), wantTagErr(typeOf[typoHomoglyph](), "A", "ѕhare")},
		{"near miss sensitivity", typeOf[typoSensitivty](), wantTagErr(typeOf[typoSensitivty](), "A", "sensitivity")},
		// go vet refuses malformed tags in source, so these types are built
		// at run time.
		{"malformed space after colon", malformedSpace, wantTagErr(malformedSpace, "A", `share:"svc" sensitive: "random"`)},
		{"missing space: key \",share\"", malformedComma, wantTagErr(malformedComma, "A", ",share")},
		{"malformed quote", malformedQuote, wantTagErr(malformedQuote, "A", `share:"svc`)},
		{"malformed escape", malformedEscape, wantTagErr(malformedEscape, "A", `share:"\q"`)},
		{"unknown sensitive option", typeOf[unknownSensitive](), wantTagErr(typeOf[unknownSensitive](), "A", "sensitive")},
		{"sensitive option case", typeOf[upperSensitiveValue](), wantTagErr(typeOf[upperSensitiveValue](), "A", "sensitive")},
		{"empty sensitive", typeOf[emptySensitive](), wantTagErr(typeOf[emptySensitive](), "A", "sensitive")},
		{"two sensitive options", typeOf[sensitiveOptions](), wantTagErr(typeOf[sensitiveOptions](), "A", "sensitive")},
		{"sensitive without share", typeOf[sensitiveNoShare](), wantTagErr(typeOf[sensitiveNoShare](), "A", "sensitive")},
		{"empty share", typeOf[emptyShare](), wantTagErr(typeOf[emptyShare](), "A", "share")},
		{"duplicate service", typeOf[dupService](), wantTagErr(typeOf[dupService](), "A", "share")},
		{"invalid service name", typeOf[invalidName](), wantTagErr(typeOf[invalidName](), "A", "share")},
		{"space in list", typeOf[spaceName](), wantTagErr(typeOf[spaceName](), "A", "share")},
		{"wildcard mixed", typeOf[wildcardMixed](), wantTagErr(typeOf[wildcardMixed](), "A", "share")},
		{"trailing comma", typeOf[trailingComma](), wantTagErr(typeOf[trailingComma](), "A", "share")},
		{"double hyphen", typeOf[doubleHyphen](), wantTagErr(typeOf[doubleHyphen](), "A", "share")},
		{"share twice", typeOf[dupShareKey](), wantTagErr(typeOf[dupShareKey](), "A", "share")},
		{"sensitive twice", typeOf[dupSensitiveKey](), wantTagErr(typeOf[dupSensitiveKey](), "A", "sensitive")},
		{"unexported shared", typeOf[unexportedShared](), wantTagErr(typeOf[unexportedShared](), "a", "share")},
		{"unexported typo", typeOf[unexportedTypo](), wantTagErr(typeOf[unexportedTypo](), "a", "sensitve")},
		{"json dash shared", typeOf[jsonDashShared](), wantTagErr(typeOf[jsonDashShared](), "A", "share")},
		{"embedded promoted shared", typeOf[embeddedPromoted](), wantTagErr(typeOf[embeddedPromoted](), "embeddedInner", "share")},
		{"json string option", typeOf[quotedShared](), wantTagErr(typeOf[quotedShared](), "A", "json")},
		{"chan", typeOf[chanShared](), wantTagErr(typeOf[chanShared](), "C", "share")},
		{"func sensitive", typeOf[funcSensitive](), wantTagErr(typeOf[funcSensitive](), "F", "sensitive")},
		{"complex", typeOf[complexShared](), wantTagErr(typeOf[complexShared](), "C", "share")},
		{"unsafe pointer", typeOf[unsafeShared](), wantTagErr(typeOf[unsafeShared](), "P", "share")},
		{"any", typeOf[anyShared](), wantTagErr(typeOf[anyShared](), "A", "share")},
		{"slice of any", typeOf[sliceOfAnyShared](), wantTagErr(typeOf[sliceOfAnyShared](), "A", "share")},
		{"map of any sensitive", typeOf[mapOfAnyShared](), wantTagErr(typeOf[mapOfAnyShared](), "M", "sensitive")},
		{"struct map key", typeOf[structKeyShared](), wantTagErr(typeOf[structKeyShared](), "M", "share")},
		{"pointer to slice of chan", typeOf[ptrChanShared](), wantTagErr(typeOf[ptrChanShared](), "P", "share")},
		{"tags on a self-marshalling type", typeOf[leafUser](), wantTagErr(typeOf[leafWithTags](), "A", "share")},
		{"ambiguous shared name", typeOf[ambiguousShare](), wantTagErr(typeOf[ambA](), "Dup", "share")},
		{"error in nested type", typeOf[nestedBad](), wantTagErr(typeOf[badInner](), "A", "sensitve")},
		{"embedded pointer to unexported", typeOf[unexpPtrOuter](), wantTagErr(typeOf[unexpPtrInner](), "A", "share")},
		{"json name encoding/json refuses", badJSONName, wantTagErr(badJSONName, "A", "json")},
		{"json name refused on an unshared field", badJSONUnshared, wantTagErr(badJSONUnshared, "B", "json")},
		{"reserved member name", typeOf[markerName](), wantTagErr(typeOf[markerName](), "A", "json")},
		{"bad type name", typeOf[badTypeName](), wantTagErr(typeOf[badTypeName](), "", "")},
		{"unmarshal without marshal", typeOf[unmarshalUser](), wantTagErr(typeOf[unmarshalUser](), "U", "share")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second call answers from the cache
				p, err := schema.For(tc.typ)
				if p != nil {
					t.Fatalf("For(%v) built a plan, want an error", tc.typ)
				}
				var te *schema.TagError
				if !errors.As(err, &te) {
					t.Fatalf("For(%v) = %v, want a *TagError", tc.typ, err)
				}
				if !errors.Is(err, schema.ErrTag) {
					t.Errorf("errors.Is(err, ErrTag) = false")
				}
				if te.Type != tc.want.typ || te.Field != tc.want.field || te.Tag != tc.want.tag {
					t.Errorf("TagError{Type: %v, Field: %q, Tag: %q}, want {%v, %q, %q}",
						te.Type, te.Field, te.Tag, tc.want.typ, tc.want.field, tc.want.tag)
				}
				if te.Reason == "" {
					t.Errorf("empty Reason")
				}
			}
		})
	}
}

// Fields that never leave are not examined, and tags of other libraries
// are left alone.
type (
	ignoredInner struct {
		C chan int `share:"svc"` // would be an error if the type were examined
	}
	acceptable struct {
		Never   ignoredInner      // no share tag: the type is not examined
		Func    func()            // not shared
		Any     any               // not shared
		Ch      chan int          `json:"-"`
		private string            //lint:ignore U1000 unexported, untagged: must be skipped
		DB      string            `db:"db_name" yaml:"y" xml:"x" validate:"required" json:"db"`
		Shape   string            `shap:"no"`   // "shap" is a near miss of share: see below
		Raw     json.RawMessage   `share:"svc"` // a self-marshalling []byte
		Num     json.Number       `share:"svc"` // a string written as a number
		When    time.Time         `share:"*"`   // a leaf
		Labels  map[string]string `share:"svc"` // string keys
		ByID    map[int64]bool    `share:"svc"` // integer keys
		Levels  map[level]int     `share:"svc"` // TextMarshaler keys
		Arr     [2]byte           `share:"svc"` // an array of numbers, not base64
		Matrix  [][]float32       `share:"svc"` // nested slices
		PtrPtr  **string          `share:"svc"` // pointers to pointers
		Lvl     level             `share:"svc"` // a TextMarshaler leaf
		Bytes   []byte            `share:"svc" sensitive:"random"`
		Extra   string            `share:"svc" sensitive:"deterministic" json:"extra,omitempty,omitzero"`
		//lint:ignore SA5008 json's unknown options are json's business, and must not disturb the plan
		Unknown string `share:"svc" json:"unknown,futureoption"`
	}
	level int
)

func (l level) MarshalText() ([]byte, error)  { return []byte(fmt.Sprint(int(l))), nil }
func (l *level) UnmarshalText(b []byte) error { return nil }

func TestAcceptable(t *testing.T) {
	// acceptable has one deliberate near miss (Shape's "shap" tag); check it
	// is refused, then check the rest on a copy without it.
	_, err := schema.For(typeOf[acceptable]())
	var te *schema.TagError
	if !errors.As(err, &te) || te.Field != "Shape" || te.Tag != "shap" {
		t.Fatalf("For(acceptable) = %v, want the near miss on Shape", err)
	}
	fields := []reflect.StructField{}
	for i := range typeOf[acceptable]().NumField() {
		if f := typeOf[acceptable]().Field(i); f.Name != "Shape" {
			fields = append(fields, f)
		}
	}
	// reflect.StructOf refuses unexported fields; drop them too.
	fields = slices.DeleteFunc(fields, func(f reflect.StructField) bool { return !f.IsExported() })
	p, err := schema.BuildUnnamed(reflect.StructOf(fields))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	kinds := map[string]schema.Kind{}
	for _, f := range p.Root.Fields {
		if f.Node != nil {
			kinds[f.Name] = f.Node.Kind
		} else {
			kinds[f.Name] = schema.Unsupported // not examined
		}
	}
	want := map[string]schema.Kind{
		"Never": schema.Unsupported, "Func": schema.Unsupported, "Any": schema.Unsupported, "db": schema.Unsupported,
		"Raw": schema.JSON, "Num": schema.JSON, "When": schema.JSON, "Labels": schema.Map, "ByID": schema.Map,
		"Levels": schema.Map, "Arr": schema.Array, "Matrix": schema.Slice, "PtrPtr": schema.Pointer,
		"Lvl": schema.JSON, "Bytes": schema.Bytes, "extra": schema.String, "unknown": schema.String,
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds = %v\nwant    %v", kinds, want)
	}
	byName := map[string]*schema.Field{}
	for _, f := range p.Root.Fields {
		byName[f.Name] = f
	}
	if f := byName["extra"]; !f.OmitEmpty || !f.OmitZero || f.Sensitive != schema.Deterministic {
		t.Errorf("extra = %+v", f)
	}
	if f := byName["db"]; f.Validate != "required" || f.Shared() {
		t.Errorf("db = %+v", f)
	}
	if n := byName["Levels"].Node; n.Key != schema.KeyText || !n.KeyTextUnmarshal {
		t.Errorf("Levels key = %v", n.Key)
	}
	if n := byName["ByID"].Node; n.Key != schema.KeyInt {
		t.Errorf("ByID key = %v", n.Key)
	}
}

// ---- projections ----

type Account struct {
	ID      string  `json:"id"      share:"financial-service,analytics-service"`
	Owner   string  `json:"owner"   share:"financial-service" sensitive:"random"`
	SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Balance float64 `json:"balance" share:"*"`
	Notes   string  `json:"notes"` // no share tag: never leaves this service
}

func projected(t *testing.T, p *schema.Projection) map[string]schema.Mode {
	t.Helper()
	m := map[string]schema.Mode{}
	for _, f := range p.Fields {
		m[f.Name] = f.Mode
	}
	return m
}

func TestProjectionPerRecipient(t *testing.T) {
	p, err := schema.For(typeOf[*Account]())
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "schema_test.Account" || p.Type != typeOf[Account]() {
		t.Errorf("plan name %q type %v", p.Name, p.Type)
	}
	for _, tc := range []struct {
		recipient string
		want      map[string]schema.Mode
	}{
		{"financial-service", map[string]schema.Mode{"id": schema.Clear, "owner": schema.Random,
			"ssn": schema.Deterministic, "balance": schema.Clear}},
		{"analytics-service", map[string]schema.Mode{"id": schema.Clear, "balance": schema.Clear}},
		{"billing", map[string]schema.Mode{"balance": schema.Clear}},
	} {
		pr, err := p.Project(tc.recipient)
		if err != nil {
			t.Fatal(err)
		}
		if got := projected(t, pr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.recipient, got, tc.want)
		}
		if pr.Lookup([]byte("notes")) != nil || pr.Lookup([]byte("Notes")) != nil {
			t.Errorf("%s: notes is in the projection", tc.recipient)
		}
		if pr.Lookup([]byte("ID")) != nil {
			t.Errorf("%s: Lookup matched a name case-insensitively", tc.recipient)
		}
		again, _ := p.Project(tc.recipient)
		if again != pr {
			t.Errorf("%s: projection not cached", tc.recipient)
		}
		wantSensitive := tc.recipient == "financial-service"
		if pr.Sensitive != wantSensitive {
			t.Errorf("%s: Sensitive = %v", tc.recipient, pr.Sensitive)
		}
	}
	for _, bad := range []string{"*", "", "Financial", "a b"} {
		if _, err := p.Project(bad); !errors.Is(err, schema.ErrRecipient) {
			t.Errorf("Project(%q) = %v, want ErrRecipient", bad, err)
		}
	}
}

func TestNotStruct(t *testing.T) {
	for _, typ := range []reflect.Type{nil, typeOf[int](), typeOf[[]Account](), typeOf[time.Time](), typeOf[**Account]()} {
		if _, err := schema.For(typ); !errors.Is(err, schema.ErrNotStruct) {
			t.Errorf("For(%v) = %v, want ErrNotStruct", typ, err)
		}
	}
}

// ---- encoding/json semantics ----

type (
	Base struct {
		ID      string `json:"id" share:"*"`
		Created int64  `json:"created" share:"svc"`
		Shadow  string `json:"shadow" share:"svc"` // shadowed by Outer.Shadow
	}
	Meta struct {
		Tag string `json:"tag" share:"*"`
	}
	Audit struct {
		By string `json:"by" share:"svc"`
		At string `json:"at"`
	}
	Outer struct {
		Base
		*Meta
		Audit   `json:"audit" share:"svc"`
		Shadow  string            `json:"shadow" share:"other"`
		HTML    string            `json:"a<b>&c" share:"*"`
		Slash   string            `json:"x/y~z" share:"*"`
		Opt     *string           `json:"opt,omitempty" share:"*"`
		Zero    time.Time         `json:"zero,omitzero" share:"*"`
		Counts  map[uint16]string `json:"counts" share:"*"`
		Default string            `share:"*"` // Go name as the member name
	}
)

func TestEmbeddedAndEncodingJSONOrder(t *testing.T) {
	p, err := schema.For(typeOf[Outer]())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]*schema.Field{}
	for _, f := range p.Root.Fields {
		names = append(names, f.Name)
		byName[f.Name] = f
	}
	// encoding/json writes the same members in the same order when every
	// field is set.
	s := "x"
	v := Outer{Base: Base{ID: "1", Created: 2, Shadow: "3"}, Meta: &Meta{Tag: "t"}, Audit: Audit{By: "b", At: "a"},
		Shadow: "s", HTML: "h", Slash: "sl", Opt: &s, Zero: time.Unix(1, 0), Counts: map[uint16]string{1: "a"},
		Default: "d"}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonKeys(t, b); !slices.Equal(got, names) {
		t.Errorf("plan fields %q\nencoding/json  %q", names, got)
	}
	if f := byName["tag"]; !f.Indirect || !slices.Equal(f.Index, []int{1, 0}) || f.GoPath != "Meta.Tag" {
		t.Errorf("promoted through pointer: %+v", f)
	}
	if f := byName["id"]; f.Indirect || !slices.Equal(f.Index, []int{0, 0}) || f.Declared != typeOf[Base]() {
		t.Errorf("promoted: %+v", f)
	}
	if f := byName["shadow"]; !slices.Equal(f.Index, []int{3}) || !slices.Equal(f.Share, []string{"other"}) {
		t.Errorf("shadowing field: %+v", f)
	}
	if f := byName["a<b>&c"]; f.JSONKey != `"a\u003cb\u003e\u0026c":` {
		t.Errorf("JSONKey = %s", f.JSONKey)
	}
	if f := byName["x/y~z"]; f.Token != "/x~1y~0z" {
		t.Errorf("Token = %s", f.Token)
	}
	if f := byName["audit"]; f.Node.Kind != schema.Struct || len(f.Node.Fields) != 2 {
		t.Errorf("tagged embedded struct is a nested field: %+v", f)
	}
	// omitempty and omitzero with encoding/json's rules.
	opt, zero := byName["opt"], byName["zero"]
	if !opt.Omitted(reflect.ValueOf((*string)(nil))) || opt.Omitted(reflect.ValueOf(&s)) {
		t.Errorf("omitempty pointer")
	}
	if !zero.Omitted(reflect.ValueOf(time.Time{})) || zero.Omitted(reflect.ValueOf(time.Unix(0, 0))) {
		t.Errorf("omitzero uses IsZero")
	}
	if byName["Default"].Omitted(reflect.ValueOf("")) {
		t.Errorf("no omitempty, yet omitted")
	}

	pr, _ := p.Project("svc")
	got := projected(t, pr)
	want := map[string]schema.Mode{"id": schema.Clear, "created": schema.Clear, "tag": schema.Clear,
		"audit": schema.Clear, "a<b>&c": schema.Clear, "x/y~z": schema.Clear, "opt": schema.Clear,
		"zero": schema.Clear, "counts": schema.Clear, "Default": schema.Clear}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("svc: %v\nwant %v", got, want)
	}
	audit := pr.Lookup([]byte("audit"))
	if inner := projected(t, audit.Proj); !reflect.DeepEqual(inner, map[string]schema.Mode{"by": schema.Clear}) {
		t.Errorf("nested struct filtered by its own tags: %v", inner)
	}
	if pr.Sensitive {
		t.Errorf("nothing is sensitive, yet Sensitive")
	}
	other, _ := p.Project("other")
	if _, ok := projected(t, other)["shadow"]; !ok {
		t.Errorf("other misses the shadowing field")
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	depth := 0
	expectKey := false
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				depth++
				expectKey = depth == 1
			case '}':
				depth--
				expectKey = depth == 1
			case '[':
				depth++
			case ']':
				depth--
				expectKey = depth == 1
			}
			continue
		case string:
			if expectKey && depth == 1 {
				keys = append(keys, tok)
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
	return keys
}

// ---- containers and sensitivity ----

type (
	Item struct {
		SKU   string `json:"sku" share:"*"`
		Price int    `json:"price" share:"svc" sensitive:"random"`
		Cost  int    `json:"cost"`
	}
	Order struct {
		Items    []Item           `json:"items" share:"*"`
		ByCode   map[string]*Item `json:"by_code" share:"svc"`
		Secret   *Item            `json:"secret" share:"svc" sensitive:"deterministic"`
		Fixed    [3]Item          `json:"fixed" share:"other"`
		Optional *Item            `json:"optional,omitempty" share:"*"`
	}
)

func TestContainers(t *testing.T) {
	p, err := schema.For(typeOf[Order]())
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := p.Project("svc")
	other, _ := p.Project("other")
	if !svc.Sensitive || other.Sensitive {
		t.Errorf("Sensitive svc=%v other=%v", svc.Sensitive, other.Sensitive)
	}
	items := svc.Lookup([]byte("items"))
	if items.Node.Kind != schema.Slice || items.Proj.Elem.Node.Kind != schema.Struct {
		t.Fatalf("items: %v", items.Node.Kind)
	}
	if got := projected(t, items.Proj.Elem); !reflect.DeepEqual(got, map[string]schema.Mode{"sku": schema.Clear, "price": schema.Random}) {
		t.Errorf("svc items[]: %v", got)
	}
	oitems := other.Lookup([]byte("items"))
	if got := projected(t, oitems.Proj.Elem); !reflect.DeepEqual(got, map[string]schema.Mode{"sku": schema.Clear}) {
		t.Errorf("other items[]: %v", got)
	}
	byCode := svc.Lookup([]byte("by_code"))
	if byCode.Node.Key != schema.KeyString || byCode.Proj.Elem.Node.Kind != schema.Pointer ||
		byCode.Proj.Elem.Elem != items.Proj.Elem {
		t.Errorf("map of pointers does not share the Item projection")
	}
	if f := svc.Lookup([]byte("secret")); f.Mode != schema.Deterministic {
		t.Errorf("secret mode %v", f.Mode)
	}
	if f := other.Lookup([]byte("fixed")); f.Node.Kind != schema.Array || f.Node.Len != 3 {
		t.Errorf("fixed %+v", f.Node)
	}
	if svc.Lookup([]byte("fixed")) != nil || other.Lookup([]byte("by_code")) != nil {
		t.Errorf("unshared containers projected")
	}
}

// ---- recursive types ----

type (
	Tree struct {
		Name     string  `json:"name" share:"*"`
		Children []*Tree `json:"children" share:"*"`
		Parent   *Tree   `json:"parent,omitempty" share:"svc" sensitive:"random"`
		Next     *List   `json:"next" share:"*"`
	}
	List struct {
		Value string `json:"value" share:"svc" sensitive:"random"`
		Next  *List  `json:"next" share:"*"`
		Tree  *Tree  `json:"tree" share:"*"`
	}
	Loop   []Loop // a slice of itself
	Looper struct {
		L Loop `json:"l" share:"*"`
	}
)

func TestRecursive(t *testing.T) {
	p, err := schema.For(typeOf[Tree]())
	if err != nil {
		t.Fatal(err)
	}
	children := p.Root.Fields[1]
	if children.Node.Elem.Elem != p.Root {
		t.Errorf("Tree.children does not point back to Tree's node")
	}
	svc, _ := p.Project("svc")
	other, _ := p.Project("other")
	if svc.Lookup([]byte("children")).Proj.Elem.Elem != svc {
		t.Errorf("projection of children is not the root projection")
	}
	// List.value is sensitive for svc only; the fixed point reaches Tree
	// through List and back.
	if !svc.Sensitive || other.Sensitive {
		t.Errorf("Sensitive: svc %v other %v", svc.Sensitive, other.Sensitive)
	}
	next := other.Lookup([]byte("next")).Proj.Elem
	if next.Sensitive || next.Lookup([]byte("tree")).Proj.Elem != other {
		t.Errorf("List ↔ Tree cycle in other's projection")
	}
	if _, err := schema.For(typeOf[Looper]()); err != nil {
		t.Errorf("a slice of itself: %v", err)
	}
}

// ---- concurrency ----

type (
	conc1 struct {
		A string   `share:"a"`
		B *conc2   `share:"*"`
		C []*conc1 `share:"b" sensitive:"random"`
	}
	conc2 struct {
		D map[string]conc3 `share:"a"`
		E *conc1           `share:"*"`
	}
	conc3 struct {
		F int `share:"b" sensitive:"deterministic"`
		G *conc2
	}
	conc4 struct {
		X conc3 `share:"a"`
		Y conc1 `share:"b"`
	}
)

func TestConcurrentCache(t *testing.T) {
	types := []reflect.Type{typeOf[conc1](), typeOf[conc2](), typeOf[conc3](), typeOf[conc4]()}
	const workers = 16
	plans := make([][]*schema.Plan, workers)
	projs := make([][]*schema.Projection, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range types {
				typ := types[(i+w)%len(types)]
				p, err := schema.For(typ)
				if err != nil {
					t.Error(err)
					return
				}
				pr, err := p.Project([]string{"a", "b"}[w%2])
				if err != nil {
					t.Error(err)
					return
				}
				plans[w] = append(plans[w], p)
				projs[w] = append(projs[w], pr)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, typ := range types {
		want, _ := schema.For(typ)
		for w := range workers {
			found := false
			for _, p := range plans[w] {
				if p.Type == typ {
					found = true
					if p != want {
						t.Errorf("worker %d got another plan for %v", w, typ)
					}
				}
			}
			if !found {
				t.Errorf("worker %d has no plan for %v", w, typ)
			}
		}
		for _, r := range []string{"a", "b"} {
			pr, _ := want.Project(r)
			for w := range workers {
				if []string{"a", "b"}[w%2] != r {
					continue
				}
				for _, got := range projs[w] {
					if got.Node.Type == typ && got != pr {
						t.Errorf("worker %d got another projection of %v for %s", w, typ, r)
					}
				}
			}
		}
	}
}
