package schema_test

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/schema"
	"github.com/lifenavigator/crossservice/testdata"
)

// fuzzTypes are the field types FuzzTags tries each tag on.
var fuzzTypes = []reflect.Type{
	reflect.TypeFor[string](), reflect.TypeFor[int](), reflect.TypeFor[[]string](),
	reflect.TypeFor[map[string]int](), reflect.TypeFor[*Address](), reflect.TypeFor[time.Time](),
	reflect.TypeFor[chan int](), reflect.TypeFor[any](), reflect.TypeFor[[]byte](),
}

func seedTags(tb testing.TB) []string {
	b, err := testdata.Schema.ReadFile("schema/tags.txt")
	if err != nil {
		tb.Fatal(err)
	}
	var tags []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "//") {
			continue
		}
		tags = append(tags, line)
	}
	if len(tags) == 0 {
		tb.Fatal("no seed tags loaded from testdata/schema/tags.txt")
	}
	return tags
}

// FuzzTags builds plans for a struct whose one field F carries a fuzzed tag.
// It must never panic; a tag with a near miss of share or sensitive, a
// malformed tag, or sensitive without share must be a *TagError on F; and an
// accepted tag must give F exactly the mode its tags say (a sensitive field
// is never clear).
func FuzzTags(f *testing.F) {
	for i, tag := range seedTags(f) {
		f.Add(tag, uint8(i))
	}
	f.Fuzz(func(t *testing.T, tag string, kind uint8) {
		typ := reflect.StructOf([]reflect.StructField{
			{Name: "F", Type: fuzzTypes[int(kind)%len(fuzzTypes)], Tag: reflect.StructTag(tag)},
		})
		p, err := schema.BuildUnnamed(typ)
		pairs, malformed := oracleParse(tag)
		var te *schema.TagError
		if err != nil && (!errors.As(err, &te) || te.Field != "F" || te.Type != typ) {
			t.Fatalf("tag %q: error %v is not a TagError on F", tag, err)
		}
		mustFail := malformed
		share, hasShare := "", false
		sens, hasSens := "", false
		for _, kv := range pairs {
			switch {
			case kv[0] == "share":
				share, hasShare = kv[1], true
			case kv[0] == "sensitive":
				sens, hasSens = kv[1], true
			case oracleNearMiss(kv[0]):
				mustFail = true
			}
		}
		if hasSens && !hasShare {
			mustFail = true
		}
		if mustFail {
			if err == nil {
				t.Fatalf("tag %q accepted, want a TagError", tag)
			}
			return
		}
		if err != nil {
			return // other refusals (bad names, types) are checked by table tests
		}
		jsonSkip := false
		for _, kv := range pairs {
			if kv[0] == "json" {
				jsonSkip = kv[1] == "-"
				break
			}
		}
		if len(p.Root.Fields) == 0 {
			if !jsonSkip || hasShare {
				t.Fatalf("tag %q: field F vanished", tag)
			}
			return
		}
		fld := p.Root.Fields[0]
		for _, r := range []string{"a", "financial-service", "zz"} {
			m := fld.ModeFor(r)
			sharedWith := share == "*" || (hasShare && contains(strings.Split(share, ","), r))
			switch {
			case !sharedWith || jsonSkip:
				if m != schema.Stripped {
					t.Fatalf("tag %q: %s gets %v, want stripped", tag, r, m)
				}
			case hasSens:
				if want := map[string]schema.Mode{"random": schema.Random, "deterministic": schema.Deterministic}[sens]; m != want {
					t.Fatalf("tag %q: %s gets %v, want %v", tag, r, m, want)
				}
			default:
				if m != schema.Clear {
					t.Fatalf("tag %q: %s gets %v, want clear", tag, r, m)
				}
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// oracleParse is an independent reading of a struct tag with the
// conventions of reflect.StructTag; malformed is true when it cannot be read
// to its end.
func oracleParse(tag string) (pairs [][2]string, malformed bool) {
	for {
		tag = strings.TrimLeft(tag, " ")
		if tag == "" {
			return pairs, false
		}
		colon := strings.IndexByte(tag, ':')
		if colon <= 0 || colon+1 >= len(tag) || tag[colon+1] != '"' {
			return pairs, true
		}
		key := tag[:colon]
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] == '"' || key[i] == 0x7f {
				return pairs, true
			}
		}
		rest := tag[colon+1:]
		end := -1
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return pairs, true
		}
		v, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return pairs, true
		}
		pairs = append(pairs, [2]string{key, v})
		tag = rest[end+1:]
	}
}

// oracleNearMiss: another case, containing "share"/"sensitiv", or at most
// two rune edits from share or sensitive.
func oracleNearMiss(k string) bool {
	if k == "share" || k == "sensitive" {
		return false
	}
	l := strings.ToLower(k)
	if strings.Contains(l, "share") || strings.Contains(l, "sensitiv") {
		return true
	}
	return editDistance(l, "share") <= 2 || editDistance(l, "sensitive") <= 2
}

func editDistance(a, b string) int {
	if !utf8.ValidString(a) {
		a = strings.ToValidUTF8(a, "\uFFFD")
	}
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
		}
	}
	return d[len(ra)][len(rb)]
}

func TestSeedTagsLoad(t *testing.T) {
	if n := len(seedTags(t)); n < 10 {
		t.Fatalf("only %d seed tags", n)
	}
}
