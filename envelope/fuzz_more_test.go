package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/envelope"
)

// markerCase is one authentic envelope of the vectors, opened, with what
// each of its markers opens to and under which binding.
type markerCase struct {
	name   string
	opened *envelope.Opened
	// opens maps an authentic binding to its plaintext: "r\x00<marker
	// JSON>\x00<path>" for a random marker, "d\x00<marker JSON>\x00<schema
	// path>" for a deterministic one (SPEC.md part 1 section 8: a random
	// marker is bound to its path, a deterministic one to its schema path).
	opens map[string]string
}

func bindingKey(mode envelope.Mode, marker []byte, path, schemaPath string) (string, bool) {
	var m map[string]string
	if json.Unmarshal(marker, &m) != nil {
		return "", false
	}
	canon, _ := json.Marshal(m) // sorted members, decoded strings
	if mode == envelope.Random {
		return "r\x00" + string(canon) + "\x00" + path, true
	}
	return "d\x00" + string(canon) + "\x00" + schemaPath, true
}

// jsonPointer: a non-empty RFC 6901 pointer in valid UTF-8 ("~" only as
// "~0" or "~1"). Other paths are the caller's mistake, not a refusal.
func jsonPointer(p string) bool {
	if p == "" || p[0] != '/' || !utf8.ValidString(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || p[i+1] != '0' && p[i+1] != '1') {
			return false
		}
	}
	return true
}

var b64url = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// markerCases opens every "ok" envelope vector and learns, by trying each
// marker of its data under each mode and each path the vector names, which
// bindings open and to what. It fails when the vectors hold no marker.
func markerCases(tb testing.TB) []markerCase {
	vs, handles := loadVectors(tb)
	var cases []markerCase
	total := 0
	for _, v := range vs {
		if v.Expected != "ok" || len(v.Fields) == 0 {
			continue
		}
		o := vectorOpener(tb, v, handles)
		op, err := o.Open([]byte(v.Envelope))
		if err != nil {
			tb.Fatalf("%s: %v", v.Name, err)
		}
		c := markerCase{name: v.Name, opened: op, opens: map[string]string{}}
		var paths []string
		for _, f := range v.Fields {
			paths = append(paths, f.Path, f.SchemaPath)
		}
		for _, f := range v.Fields {
			marker := rawAt(tb, op.Data, f.Path)
			for _, mode := range []envelope.Mode{envelope.Random, envelope.Deterministic} {
				for _, p := range paths {
					for _, sp := range paths {
						pt, err := op.OpenField(marker, mode, []byte(p), []byte(sp))
						if err != nil {
							continue
						}
						k, _ := bindingKey(mode, marker, p, sp)
						c.opens[k] = string(pt)
					}
				}
			}
			if f.Expected == "ok" {
				k, _ := bindingKey(modeOf(tb, f.Mode), marker, f.Path, f.SchemaPath)
				if c.opens[k] != f.Plaintext {
					tb.Fatalf("%s %s: the vector's own binding does not open to its plaintext", v.Name, f.Path)
				}
			}
		}
		total += len(c.opens)
		cases = append(cases, c)
	}
	if len(cases) == 0 || total == 0 {
		tb.Fatal("no markers in the envelope vectors")
	}
	return cases
}

// FuzzOpenField feeds mutated markers, modes and paths of every marker of
// the envelope vectors to Opened.OpenField. It must never panic; a refusal
// must match ErrCannotOpen; a marker opens only as the mode its "$enc"
// names, only under a binding it was sealed for, and only to the plaintext
// sealed; and the canonical form (the fast path) and any other spelling of
// the same marker (whitespace, member order: the general parser) get the
// same answer.
func FuzzOpenField(f *testing.F) {
	cases := markerCases(f)
	detOpens := map[string]string{}
	for _, c := range cases {
		for k, pt := range c.opens {
			if k[0] == 'd' {
				detOpens[k] = pt
			}
		}
	}
	vs, _ := loadVectors(f)
	byName := map[string]int{}
	for i, c := range cases {
		byName[c.name] = i
	}
	for _, v := range vs {
		i, ok := byName[v.Name]
		if !ok {
			continue
		}
		for _, fl := range v.Fields {
			marker := rawAt(f, cases[i].opened.Data, fl.Path)
			f.Add(uint8(i), marker, fl.Mode == "deterministic", fl.Path, fl.SchemaPath)
		}
	}
	f.Fuzz(func(t *testing.T, idx uint8, marker []byte, det bool, path, schemaPath string) {
		c := cases[int(idx)%len(cases)]
		mode := envelope.Random
		if det {
			mode = envelope.Deterministic
		}
		pt, err := c.opened.OpenField(marker, mode, []byte(path), []byte(schemaPath))

		// Other spellings of the same marker get the same answer.
		spellings := [][]byte{append(append([]byte(" \n"), marker...), '\t')}
		var m map[string]string
		if json.Unmarshal(marker, &m) == nil && len(m) == 2 && b64url.MatchString(m["$enc"]) && b64url.MatchString(m["ct"]) {
			spellings = append(spellings,
				[]byte(`{"$enc":"`+m["$enc"]+`","ct":"`+m["ct"]+`"}`),
				[]byte(`{ "ct" : "`+m["ct"]+`" , "$enc" : "`+m["$enc"]+`" }`))
		}
		for _, s := range spellings {
			pt2, err2 := c.opened.OpenField(s, mode, []byte(path), []byte(schemaPath))
			if (err == nil) != (err2 == nil) || !bytes.Equal(pt, pt2) {
				t.Fatalf("%s: %q and %q get different answers: %v / %v", c.name, marker, s, err, err2)
			}
		}

		validArgs := jsonPointer(path) && jsonPointer(schemaPath)
		if err != nil {
			if validArgs && !errors.Is(err, envelope.ErrCannotOpen) {
				t.Fatalf("refusal %v does not match ErrCannotOpen", err)
			}
			return
		}
		if !validArgs {
			t.Fatalf("accepted the path %q (%q), which is not a JSON Pointer", path, schemaPath)
		}
		if m["$enc"] != mode.String() {
			t.Fatalf("%s: a %q marker opened as %v", c.name, m["$enc"], mode)
		}
		k, ok := bindingKey(mode, marker, path, schemaPath)
		want, authentic := c.opens[k]
		if mode == envelope.Deterministic {
			// Not bound to its message: it opens in any envelope of the
			// same type to the same recipient (SPEC.md part 1, 8.3).
			want, authentic = detOpens[k]
		}
		if !ok || !authentic {
			t.Fatalf("%s: OpenField accepted %q as %v at %q (%q), a binding it was not sealed for", c.name, marker, mode, path, schemaPath)
		}
		if string(pt) != want {
			t.Fatalf("%s: opened to %q, sealed %q", c.name, pt, want)
		}
	})
}
