package schema_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/schema"
	"github.com/lifenavigator/crossservice/testdata"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/schema")

type (
	Address struct {
		Street string `json:"street" share:"financial-service" sensitive:"random"`
		City   string `json:"city" share:"*"`
		Zip    string `json:"zip" share:"analytics-service,financial-service"`
	}
	Card struct {
		Number string    `json:"number" share:"financial-service" sensitive:"deterministic"`
		Expiry time.Time `json:"expiry" share:"financial-service"`
		Label  string    `json:"label|pipe" share:"*"`
	}
	Audited struct {
		CreatedBy string `json:"created_by" share:"analytics-service"`
	}
	Customer struct {
		Audited
		Name     string            `json:"name" share:"financial-service"`
		Home     Address           `json:"home" share:"financial-service,analytics-service"`
		Previous []Address         `json:"previous" share:"financial-service" sensitive:"random"`
		Cards    []*Card           `json:"cards" share:"financial-service,analytics-service"`
		Tags     map[string]string `json:"tags" share:"*"`
		Referrer *Customer         `json:"referrer,omitempty" share:"financial-service"`
		Internal string            `json:"internal"`
	}
)

func TestReportGolden(t *testing.T) {
	e, err := schema.Report([]reflect.Type{reflect.TypeFor[Account](), reflect.TypeFor[*Customer]()},
		[]string{"financial-service", "analytics-service", "billing"})
	if err != nil {
		t.Fatal(err)
	}
	// Spot checks that do not depend on the golden files.
	want := map[string][]schema.Mode{
		"Account.notes":               {schema.Stripped, schema.Stripped, schema.Stripped},
		"Account.ssn":                 {schema.Deterministic, schema.Stripped, schema.Stripped},
		"Customer.created_by":         {schema.Stripped, schema.Clear, schema.Stripped},
		"Customer.home.street":        {schema.Random, schema.Stripped, schema.Stripped},
		"Customer.home.city":          {schema.Clear, schema.Clear, schema.Stripped},
		"Customer.previous[].city":    {schema.Random, schema.Stripped, schema.Stripped},
		"Customer.cards[].number":     {schema.Deterministic, schema.Stripped, schema.Stripped},
		"Customer.cards[].label|pipe": {schema.Clear, schema.Clear, schema.Stripped},
		"Customer.tags":               {schema.Clear, schema.Clear, schema.Clear},
		"Customer.referrer":           {schema.Clear, schema.Stripped, schema.Stripped},
	}
	seen := 0
	for _, r := range e.Rows {
		if m, ok := want[r.Path]; ok {
			seen++
			if !reflect.DeepEqual(r.Modes, m) {
				t.Errorf("%s: %v, want %v", r.Path, r.Modes, m)
			}
		}
		if r.Path == "Customer.referrer" && !strings.Contains(r.Note, "recursive") {
			t.Errorf("recursive row has no note: %+v", r)
		}
		if strings.HasPrefix(r.Path, "Customer.referrer.") {
			t.Errorf("recursion expanded: %s", r.Path)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d spot-checked rows", seen, len(want))
	}
	if err := checkDOT(e.DOT()); err != nil {
		t.Errorf("DOT: %v\n%s", err, e.DOT())
	}
	golden(t, "report.md", e.Markdown())
	golden(t, "report.dot", e.DOT())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(filepath.Join("..", "testdata", "schema", name), []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := testdata.Schema.ReadFile("schema/" + name)
	if err != nil {
		t.Fatalf("golden file %s: %v (run go test -run Golden -update)", name, err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestReportErrors(t *testing.T) {
	for _, services := range [][]string{{"*"}, {"ok", "ok"}, {"Bad"}, {""}} {
		if _, err := schema.Report([]reflect.Type{reflect.TypeFor[Account]()}, services); !errors.Is(err, schema.ErrRecipient) {
			t.Errorf("Report(%q) = %v, want ErrRecipient", services, err)
		}
	}
	if _, err := schema.Report([]reflect.Type{reflect.TypeFor[typoSensitve]()}, []string{"svc"}); !errors.Is(err, schema.ErrTag) {
		t.Errorf("Report of a bad type = %v, want ErrTag", err)
	}
}

func TestDOTEscaping(t *testing.T) {
	e := &schema.Exposure{Services: []string{"svc"}, Rows: []schema.ExposureRow{
		{Path: `T.a"b\c`, GoType: "string", Modes: []schema.Mode{schema.Random}, Note: "line\nbreak"},
	}}
	d := e.DOT()
	if err := checkDOT(d); err != nil {
		t.Fatalf("%v\n%s", err, d)
	}
	if !strings.Contains(d, `"T.a\"b\\c\nstring\nline\nbreak"`) {
		t.Errorf("label not escaped:\n%s", d)
	}
	md := (&schema.Exposure{Services: []string{"svc"}, Rows: []schema.ExposureRow{
		{Path: "T.a|b", GoType: "string", Modes: []schema.Mode{schema.Clear}}}}).Markdown()
	if !strings.Contains(md, `T.a\|b`) {
		t.Errorf("pipe not escaped:\n%s", md)
	}
}

// checkDOT parses the subset of the DOT language the report writes:
// digraph ID { stmt* } with attribute statements, node statements and edge
// statements, each ending with ';', attribute values IDs or quoted strings.
func checkDOT(s string) error {
	toks, err := dotTokens(s)
	if err != nil {
		return err
	}
	i := 0
	next := func() string {
		if i >= len(toks) {
			return ""
		}
		i++
		return toks[i-1]
	}
	expect := func(want string) error {
		if got := next(); got != want {
			return errors.New("want " + want + ", got " + got)
		}
		return nil
	}
	isID := func(t string) bool { return t != "" && (t[0] == '"' || isIdent(t) || isNumeral(t)) }
	attrs := func() error {
		if err := expect("["); err != nil {
			return err
		}
		for {
			k := next()
			if k == "]" {
				return nil
			}
			if !isIdent(k) {
				return errors.New("bad attribute name " + k)
			}
			if err := expect("="); err != nil {
				return err
			}
			if v := next(); !isID(v) {
				return errors.New("bad attribute value " + v)
			}
			if i < len(toks) && toks[i] == "," {
				i++
			}
		}
	}
	if err := expect("digraph"); err != nil {
		return err
	}
	if !isID(next()) {
		return errors.New("missing graph id")
	}
	if err := expect("{"); err != nil {
		return err
	}
	for {
		t := next()
		switch {
		case t == "}":
			if i != len(toks) {
				return errors.New("tokens after the graph")
			}
			return nil
		case t == "node" || t == "edge":
			if err := attrs(); err != nil {
				return err
			}
		case isID(t):
			if i < len(toks) && toks[i] == "=" {
				i++
				if !isID(next()) {
					return errors.New("bad graph attribute")
				}
			} else {
				if i < len(toks) && toks[i] == "->" {
					i++
					if !isID(next()) {
						return errors.New("bad edge target")
					}
				}
				if i < len(toks) && toks[i] == "[" {
					if err := attrs(); err != nil {
						return err
					}
				}
			}
		default:
			return errors.New("unexpected " + t)
		}
		if err := expect(";"); err != nil {
			return err
		}
	}
}

func isIdent(t string) bool {
	if t == "" || (t[0] >= '0' && t[0] <= '9') {
		return false
	}
	for _, c := range t {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func isNumeral(t string) bool {
	_, err := strconv.ParseFloat(t, 64)
	return err == nil && !strings.ContainsAny(t, "eEinfINFxX_+")
}

func dotTokens(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				} else if s[j] == '\n' {
					return nil, errors.New("raw newline in a quoted string")
				}
			}
			if j >= len(s) {
				return nil, errors.New("unterminated string")
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case c == '-' && i+1 < len(s) && s[i+1] == '>':
			toks = append(toks, "->")
			i += 2
		case strings.IndexByte("{}[];=,", c) >= 0:
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && (isIdent(s[j:j+1]) || s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			if j == i {
				return nil, errors.New("unexpected character " + string(c))
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}
