package fieldcrypt_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/schema"
)

// Message types of the invariants, beside Profile: containers of structs
// at every level, a recursive pointer, an array, non-string map keys, a
// sensitive struct, and unshared fields at every level.
type InvOrder struct {
	ID     string              `json:"id" share:"*"`
	Lines  []InvLine           `json:"lines" share:"financial-service,analytics-service"`
	ByCode map[string]InvLine  `json:"by_code" share:"financial-service"`
	Matrix [][]int             `json:"matrix" share:"analytics-service"`
	Meta   map[string][]string `json:"meta,omitempty" share:"*"`
	Card   *InvCard            `json:"card" share:"financial-service" sensitive:"random"`
	Fixed  [2]InvLine          `json:"fixed" share:"*"`
	Flags  map[uint8]bool      `json:"flags" share:"analytics-service"`
	Refs   map[int]*InvCard    `json:"refs" share:"*"`
	Hidden InvLine             `json:"hidden"`
	Notes  string              `json:"notes"`
	Seq    []uint16            `json:"seq" share:"financial-service" sensitive:"deterministic"`
}

type InvLine struct {
	SKU   string   `json:"sku" share:"*"`
	Price float64  `json:"price" share:"financial-service" sensitive:"deterministic"`
	Qty   int32    `json:"qty" share:"analytics-service"`
	Memo  string   `json:"memo"`
	Sub   *InvLine `json:"sub,omitempty" share:"*"`
	Tags  []string `json:"tags" share:"financial-service"`
}

type InvCard struct {
	Number string `json:"number" share:"financial-service"`
	Holder string `json:"holder" share:"*"`
	PIN    string `json:"pin"`
}

// filler fills any value of these types with random content.
type filler struct {
	r *rand.Rand
	n int
}

func (g *filler) fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		g.n++
		v.SetString(fmt.Sprintf("w%d-%x", g.n, g.r.Uint32()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(g.r.Int64N(1<<(v.Type().Bits()-2)) - 1<<(v.Type().Bits()-3))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(g.r.Uint64N(1 << (v.Type().Bits() - 1)))
	case reflect.Float64:
		v.SetFloat(math.Round(g.r.NormFloat64()*1e6) / 100)
	case reflect.Bool:
		v.SetBool(g.r.IntN(2) == 0)
	case reflect.Pointer:
		if depth > 3 || g.r.IntN(3) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		g.fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if g.r.IntN(5) == 0 {
			return // nil
		}
		n := 0
		if depth < 3 {
			n = g.r.IntN(4)
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			g.fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			g.fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		if g.r.IntN(5) == 0 {
			return
		}
		m := reflect.MakeMap(v.Type())
		n := 0
		if depth < 3 {
			n = g.r.IntN(4)
		}
		for range n {
			k := reflect.New(v.Type().Key()).Elem()
			g.fill(k, depth+1)
			e := reflect.New(v.Type().Elem()).Elem()
			g.fill(e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			g.fill(v.Field(i), depth+1)
		}
	}
}

// sharedWith reads a share tag by hand (not with package schema, which the
// property checks).
func sharedWith(f reflect.StructField, recipient string) bool {
	tag, ok := f.Tag.Lookup("share")
	return ok && (tag == "*" || slices.Contains(strings.Split(tag, ","), recipient))
}

// project returns what recipient may receive of v: v with every field not
// shared with it zeroed, at every level, by hand from the struct tags.
func project(v reflect.Value, recipient string) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			out.Set(v)
			break
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if sharedWith(f, recipient) && !(strings.Contains(f.Tag.Get("json"), ",omitempty") && emptyValue(v.Field(i))) {
				out.Field(i).Set(project(v.Field(i), recipient))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(project(v.Elem(), recipient))
			out.Set(p)
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			for i := range v.Len() {
				s.Index(i).Set(project(v.Index(i), recipient))
			}
			out.Set(s)
		}
	case reflect.Array:
		for i := range v.Len() {
			out.Index(i).Set(project(v.Index(i), recipient))
		}
	case reflect.Map:
		if !v.IsNil() {
			m := reflect.MakeMap(v.Type())
			it := v.MapRange()
			for it.Next() {
				m.SetMapIndex(it.Key(), project(it.Value(), recipient))
			}
			out.Set(m)
		}
	default:
		out.Set(v)
	}
	return out
}

// emptyValue is encoding/json's omitempty test.
func emptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	}
	return v.IsZero()
}

// leaked returns the path of a field of got that is not shared with
// recipient and yet not zero, or "".
func leaked(got reflect.Value, recipient, path string) string {
	switch got.Kind() {
	case reflect.Struct:
		if got.Type() == reflect.TypeFor[time.Time]() {
			return ""
		}
		for i := range got.NumField() {
			f := got.Type().Field(i)
			if !sharedWith(f, recipient) {
				if !got.Field(i).IsZero() {
					return path + "." + f.Name
				}
				continue
			}
			if p := leaked(got.Field(i), recipient, path+"."+f.Name); p != "" {
				return p
			}
		}
	case reflect.Pointer:
		if !got.IsNil() {
			return leaked(got.Elem(), recipient, path)
		}
	case reflect.Slice, reflect.Array:
		for i := range got.Len() {
			if p := leaked(got.Index(i), recipient, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		it := got.MapRange()
		for it.Next() {
			if p := leaked(it.Value(), recipient, path+"[k]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// Invariant: Open never yields a field that the sender's plan did not
// share with this recipient. For generated values of several types, each
// recipient opens what the sender sealed for it: every field not shared
// with it is zero at every level, and every shared one is what was sent.
// A dishonest sender (every field written in the clear, or an unshared
// member added to an honest envelope, under a valid tag) gets a refusal
// or, at worst, the same zeros.
func TestPropertyOpenYieldsOnlySharedFields(t *testing.T) {
	w := newWorld(t)
	r := rand.New(rand.NewPCG(20261129, 1))
	g := &filler{r: r}
	pg := &gen{r: r}
	codecs := map[string]*fieldcrypt.Codec{financial: w.finC, analytics: w.anaC}
	sealers := map[string]*envelope.Sealer{financial: w.front.sealerFor(t, w.fin), analytics: w.front.sealerFor(t, w.ana)}
	n := 300
	if testing.Short() {
		n = 60
	}
	forgedTried, forgedOpened := 0, 0
	defer func() {
		t.Logf("%d forged envelopes, %d opened (without leaking)", forgedTried, forgedOpened)
		if !t.Failed() && forgedTried < n {
			t.Errorf("only %d forged envelopes were tried", forgedTried)
		}
	}()
	for i := range n {
		var v any
		switch i % 3 {
		case 0:
			o := InvOrder{}
			g.fill(reflect.ValueOf(&o).Elem(), 0)
			v = &o
		case 1:
			l := InvLine{}
			g.fill(reflect.ValueOf(&l).Elem(), 0)
			v = &l
		default:
			p := pg.profile()
			v = &p
		}
		typ := reflect.TypeOf(v).Elem()
		for _, rcp := range []string{financial, analytics} {
			env, err := w.sender.Seal(v, rcp)
			if err != nil {
				t.Fatalf("value %d (%v) for %s: %v", i, typ, rcp, err)
			}
			got := reflect.New(typ)
			if _, err := codecs[rcp].OpenFrom(frontend, env, got.Interface()); err != nil {
				t.Fatalf("value %d (%v): %s cannot open: %v", i, typ, rcp, err)
			}
			if p := leaked(got.Elem(), rcp, typ.Name()); p != "" {
				t.Fatalf("value %d: %s received %s, which is not shared with it", i, rcp, p)
			}
			want := project(reflect.ValueOf(v).Elem(), rcp)
			if !equalValues(got.Elem(), want) {
				t.Fatalf("value %d: %s got\n%+v\nwant\n%+v", i, rcp, got.Elem(), want)
			}

			// A dishonest sender holding the recipient's public key: the
			// whole value in the clear...
			plan, err := schema.For(typ)
			if err != nil {
				t.Fatal(err)
			}
			full, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			dishonest := [][]byte{full}
			// ... and an honest envelope's data with an unshared member
			// added (random markers dropped: they are bound to their
			// message).
			e, err := envelope.Parse(env)
			if err != nil {
				t.Fatal(err)
			}
			data := dropRandomMarkers(e.Data)
			for _, m := range []string{`"notes":"x",`, `"memo":"x",`, `"internal":"x",`, `"hidden":{},`, `"pin":"x",`} {
				dishonest = append(dishonest, append([]byte("{"+m), data[1:]...))
			}
			for _, d := range dishonest {
				msg, err := sealers[rcp].Begin(plan.Name)
				if err != nil {
					t.Fatal(err)
				}
				forged, err := msg.Finish(d)
				if err != nil {
					continue // not a JSON object the sealer takes
				}
				forgedTried++
				got := reflect.New(typ)
				if _, err := codecs[rcp].Open(forged, got.Interface()); err != nil {
					continue
				}
				forgedOpened++
				if p := leaked(got.Elem(), rcp, typ.Name()); p != "" {
					t.Fatalf("value %d: a forged envelope gave %s the unshared %s", i, rcp, p)
				}
			}
		}
	}
}

var randomMarkerMember = regexp.MustCompile(`"[a-z_]+":\{"\$enc":"random","ct":"[A-Za-z0-9_-]+"\},?`)

func dropRandomMarkers(data []byte) []byte {
	d := randomMarkerMember.ReplaceAll(data, nil)
	d = bytes.ReplaceAll(d, []byte("{,"), []byte("{"))
	return bytes.ReplaceAll(d, []byte(",}"), []byte("}"))
}

// equalValues is reflect.DeepEqual with times compared as instants (a JSON
// round trip changes their location).
func equalValues(a, b reflect.Value) bool {
	return reflect.DeepEqual(normalizeTimes(a).Interface(), normalizeTimes(b).Interface())
}

func normalizeTimes(v reflect.Value) reflect.Value {
	if p, ok := v.Addr().Interface().(*Profile); ok {
		n := normalize(*p)
		return reflect.ValueOf(&n).Elem()
	}
	return v
}

// Invariant: two random-mode seals of one value never give equal
// ciphertexts. The same value sealed many times (under one reused data
// key, as the default Reuse does) gives pairwise distinct random markers,
// and distinct AES-GCM nonces under each data key; its deterministic
// markers, for contrast, are all equal.
func TestPropertyRandomSealsNeverRepeat(t *testing.T) {
	w := newWorld(t)
	g := &filler{r: rand.New(rand.NewPCG(5, 8))}
	markerRe := regexp.MustCompile(`\{"\$enc":"(random|deterministic)","ct":"([A-Za-z0-9_-]+)"\}`)
	for v := range 6 {
		o := InvOrder{}
		g.fill(reflect.ValueOf(&o).Elem(), 0)
		o.Card = &InvCard{Number: "4111111111111111", Holder: "Ada"} // at least one random marker
		o.Seq = []uint16{1, 2, 3}                                    // at least one deterministic marker
		seen := map[string]int{}
		nonces := map[string]map[string]bool{} // wrapped key -> nonces
		var det []string                       // per seal, its deterministic markers
		for i := range 100 {
			env, err := w.sender.Seal(&o, financial)
			if err != nil {
				t.Fatal(err)
			}
			e, err := envelope.Parse(env)
			if err != nil {
				t.Fatal(err)
			}
			wk := string(e.Header.Key.Wrapped)
			if nonces[wk] == nil {
				nonces[wk] = map[string]bool{}
			}
			random, dets := 0, ""
			for _, m := range markerRe.FindAllSubmatch(e.Data, -1) {
				ct, err := base64.RawURLEncoding.DecodeString(string(m[2]))
				if err != nil {
					t.Fatal(err)
				}
				if string(m[1]) == "deterministic" {
					dets += string(m[2]) + ","
					continue
				}
				random++
				if j, dup := seen[string(ct)]; dup {
					t.Fatalf("value %d: seal %d repeats a random ciphertext of seal %d", v, i, j)
				}
				seen[string(ct)] = i
				if nonces[wk][string(ct[:12])] {
					t.Fatalf("value %d: seal %d repeats an AES-GCM nonce under one data key", v, i)
				}
				nonces[wk][string(ct[:12])] = true
			}
			if random == 0 || dets == "" {
				t.Fatalf("no random or no deterministic marker in %s", e.Data)
			}
			det = append(det, dets)
		}
		if len(nonces) == 100 {
			t.Fatalf("no data key was reused: the nonce check saw one message per key")
		}
		for i, d := range det {
			if d != det[0] {
				t.Fatalf("value %d: the deterministic markers of seal %d differ from those of seal 0", v, i)
			}
		}
	}
}

// Invariant: a failed Open changes no state. Destinations filled with
// random values, unshared fields included, are left deep-equal to an
// independent copy after every refusal: altered or truncated envelopes,
// another type, another recipient, another sender, data that fails
// half-way through decoding, and values that fail validation after
// decoding.
func TestPropertyFailedOpenLeavesDestination(t *testing.T) {
	w := newWorld(t)
	r := rand.New(rand.NewPCG(99, 1))
	g := &filler{r: r}
	n := 300
	if testing.Short() {
		n = 60
	}
	failures := map[string]int{}
	s := w.front.sealerFor(t, w.fin)
	for i := range n {
		seed := r.Uint64()
		fresh := func() *InvOrder {
			f := &filler{r: rand.New(rand.NewPCG(seed, 2))}
			o := &InvOrder{}
			f.fill(reflect.ValueOf(o).Elem(), 0)
			return o
		}
		val := InvOrder{}
		g.fill(reflect.ValueOf(&val).Elem(), 0)
		env, err := w.sender.Seal(&val, financial)
		if err != nil {
			t.Fatal(err)
		}
		var bad []struct {
			class string
			env   []byte
			from  string
		}
		add := func(class string, b []byte, from string) {
			bad = append(bad, struct {
				class string
				env   []byte
				from  string
			}{class, b, from})
		}
		flipped := bytes.Clone(env)
		flipped[r.IntN(len(flipped))] ^= byte(1 << r.IntN(8))
		add("bit flip", flipped, "")
		add("truncated", env[:r.IntN(len(env))], "")
		if line, err := w.sender.Seal(&InvLine{SKU: "x"}, financial); err == nil {
			add("other type", line, "")
		}
		if other, err := w.sender.Seal(&val, analytics); err == nil {
			add("other recipient", other, "")
		}
		add("other sender", env, "analytics-service")
		// Authentic envelopes whose data fails late: a valid prefix, then
		// a member of the wrong type or a duplicate.
		e, err := envelope.Parse(env)
		if err != nil {
			t.Fatal(err)
		}
		data := dropRandomMarkers(e.Data)
		for _, tail := range []string{`,"lines":"not a list"}`, `,"id":"again"}`, `,"by_code":{"k":{"sku":1}}}`} {
			msg, err := s.Begin("fieldcrypt_test.InvOrder")
			if err != nil {
				t.Fatal(err)
			}
			if forged, err := msg.Finish(append(bytes.Clone(data[:len(data)-1]), tail...)); err == nil {
				add("fails half-way", forged, "")
			}
		}
		for _, b := range bad {
			dst := fresh()
			var err error
			if b.from != "" {
				_, err = w.finC.OpenFrom(b.from, b.env, dst)
			} else {
				_, err = w.finC.Open(b.env, dst)
			}
			if err == nil {
				continue // a bit flip that changed nothing that matters
			}
			failures[b.class]++
			if !reflect.DeepEqual(dst, fresh()) {
				t.Fatalf("value %d: a refused Open (%s: %v) changed the destination", i, b.class, err)
			}
		}
		// Validation after a complete decode: an SSN of the wrong length.
		p := sampleProfile()
		msg, err := s.Begin("fieldcrypt_test.Profile")
		if err != nil {
			t.Fatal(err)
		}
		ssn, err := msg.AppendField(nil, envelope.Deterministic, []byte("/ssn"), []byte("/ssn"), []byte(`"12345"`))
		if err != nil {
			t.Fatal(err)
		}
		forged, err := msg.Finish(append(append([]byte(`{"id":"p-1","ssn":`), ssn...), '}'))
		if err != nil {
			t.Fatal(err)
		}
		before := p
		if _, err := w.finC.Open(forged, &p); err == nil {
			t.Fatal("an SSN of 5 digits passed validation")
		}
		failures["fails validation"]++
		if !reflect.DeepEqual(p, before) {
			t.Fatalf("value %d: a refused Open (validation) changed the destination", i)
		}
	}
	for _, class := range []string{"bit flip", "truncated", "other type", "other recipient", "other sender", "fails half-way", "fails validation"} {
		if failures[class] == 0 {
			t.Errorf("no refusal of class %q was produced", class)
		}
	}
}
