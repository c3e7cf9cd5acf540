package fieldcrypt_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/refdto"
	"github.com/lifenavigator/crossservice/schema"
)

// How Seal and Open grow (issue 8): with the number of fields of a flat
// message (10, 100, 1000) and with the size of its payload (1 KiB to
// 1 MiB). `make bench` divides each figure by its field count or byte count
// and flags a step whose cost grows faster than n^1.5 (a quadratic step
// grows as n^2).

// scaleFieldCounts and scalePayloadSizes are the points measured.
var (
	scaleFieldCounts  = []int{10, 100, 1000}
	scalePayloadSizes = []int{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}
)

// fieldsType returns a flat struct type of n fields built with
// reflect.StructOf, planned under the name "bench.FieldsN" (schema.ForNamed:
// a StructOf type has no name of its own). Every ten fields hold one random
// and one deterministic sensitive string, one field shared with no one, and
// seven clear ones cycling through string, int64, float64 and bool, so the
// mix, and so the cost per field, is the same at every n.
func fieldsType(tb testing.TB, n int) reflect.Type {
	tb.Helper()
	fieldsTypesMu.Lock()
	defer fieldsTypesMu.Unlock()
	if t, ok := fieldsTypes[n]; ok {
		return t
	}
	fs := make([]reflect.StructField, n)
	for i := range fs {
		tag := fmt.Sprintf(`json:"f%d" share:"%s"`, i, refdto.Recipient)
		var typ reflect.Type
		switch i % 10 {
		case 0:
			typ, tag = reflect.TypeFor[string](), tag+` sensitive:"random"`
		case 5:
			typ, tag = reflect.TypeFor[string](), tag+` sensitive:"deterministic"`
		case 9:
			typ, tag = reflect.TypeFor[string](), fmt.Sprintf(`json:"f%d"`, i)
		default:
			typ = []reflect.Type{reflect.TypeFor[string](), reflect.TypeFor[int64](),
				reflect.TypeFor[float64](), reflect.TypeFor[bool]()}[i%4]
		}
		fs[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: typ, Tag: reflect.StructTag(tag)}
	}
	t := reflect.StructOf(fs)
	if _, err := schema.ForNamed(t, "bench.Fields"+strconv.Itoa(n)); err != nil {
		tb.Fatal(err)
	}
	fieldsTypes[n] = t
	return t
}

var (
	fieldsTypesMu sync.Mutex
	fieldsTypes   = map[int]reflect.Type{}
)

// fieldsValue returns a pointer to a filled value of t.
func fieldsValue(t reflect.Type) any {
	p := reflect.New(t)
	v := p.Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("value-of-field-" + strconv.Itoa(i))
		case reflect.Int64:
			f.SetInt(int64(i) * 7919)
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.25)
		case reflect.Bool:
			f.SetBool(true)
		}
	}
	return p.Interface()
}

// scalePayload is the message of the payload-size benchmarks: half its JSON
// is a slice of clear structs (walked field by field), half one random
// sensitive string (one ciphertext).
type scalePayload struct {
	ID     string      `json:"id" share:"*"`
	Items  []scaleItem `json:"items" share:"*"`
	Secret string      `json:"secret" share:"billing" sensitive:"random"`
}

type scaleItem struct {
	SKU   string  `json:"sku" share:"*"`
	Qty   int     `json:"qty" share:"*"`
	Price float64 `json:"price" share:"*"`
	Note  string  `json:"note" share:"*"`
}

// newScalePayload returns a message whose encoding/json form is about size
// bytes, and that size exactly.
func newScalePayload(size int) (*scalePayload, int) {
	p := &scalePayload{ID: "ord_01J9Z7Q4X8M2"}
	item := scaleItem{SKU: "BK-000001", Qty: 3, Price: 49.95, Note: "gift wrap, no invoice in the box"}
	one, _ := json.Marshal(item)
	for range max(1, size/2/(len(one)+1)) {
		p.Items = append(p.Items, item)
	}
	cur, _ := json.Marshal(p)
	p.Secret = strings.Repeat("s", max(1, size-len(cur)))
	all, _ := json.Marshal(p)
	return p, len(all)
}

type scaleWorld struct {
	sender, receiver *fieldcrypt.Codec
}

func newScaleWorld(tb testing.TB) *scaleWorld {
	tb.Helper()
	front, bill := newParty(tb, refdto.Sender), newParty(tb, refdto.Recipient)
	return &scaleWorld{sender: front.codec(tb, bill), receiver: bill.codec(tb, front)}
}

// warm seals v and opens it into dst once, so that plans, the wrapped data
// key and the opener's unwrapped-key cache are ready before the clock runs
// (Seal and Open reuse them, as in BenchmarkSeal and BenchmarkOpen), and
// returns the envelope.
func (w *scaleWorld) warm(b *testing.B, v, dst any) []byte {
	b.Helper()
	env, err := w.sender.Seal(v, refdto.Recipient)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.receiver.Open(env, dst); err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkScaleFields: Seal and Open of a flat message of n fields
// (metric ns/field as well as ns/op).
func BenchmarkScaleFields(b *testing.B) {
	w := newScaleWorld(b)
	for _, n := range scaleFieldCounts {
		t := fieldsType(b, n)
		v := fieldsValue(t)
		env := w.warm(b, v, reflect.New(t).Interface())
		b.Run(fmt.Sprintf("seal/fields=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.sender.Seal(v, refdto.Recipient); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/field")
		})
		b.Run(fmt.Sprintf("open/fields=%d", n), func(b *testing.B) {
			dst := reflect.New(t).Interface()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.receiver.Open(env, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/field")
		})
	}
}

// BenchmarkScalePayload: Seal and Open of scalePayload from 1 KiB to 1 MiB
// of JSON (SetBytes: the encoding/json size of the value).
func BenchmarkScalePayload(b *testing.B) {
	w := newScaleWorld(b)
	for _, size := range scalePayloadSizes {
		v, n := newScalePayload(size)
		env := w.warm(b, v, new(scalePayload))
		name := strconv.Itoa(size>>10) + "KiB"
		b.Run("seal/size="+name, func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.sender.Seal(v, refdto.Recipient); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("open/size="+name, func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var dst scalePayload
				if _, err := w.receiver.Open(env, &dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestScaleMessagesRoundTrip checks that the benchmarks above measure what
// they claim: each generated message opens to the value sealed, minus the
// fields shared with no one, and its payload has the size announced.
func TestScaleMessagesRoundTrip(t *testing.T) {
	w := newScaleWorld(t)
	for _, n := range scaleFieldCounts {
		typ := fieldsType(t, n)
		v := fieldsValue(typ)
		env, err := w.sender.Seal(v, refdto.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(typ)
		if _, err := w.receiver.Open(env, got.Interface()); err != nil {
			t.Fatal(err)
		}
		want := reflect.ValueOf(v).Elem()
		for i := range n {
			g, wv := got.Elem().Field(i), want.Field(i)
			if i%10 == 9 {
				if !g.IsZero() {
					t.Errorf("fields=%d: unshared field %d arrived", n, i)
				}
				continue
			}
			if !g.Equal(wv) {
				t.Errorf("fields=%d: field %d = %v, want %v", n, i, g, wv)
			}
		}
		if strings.Contains(string(env), "value-of-field-0\"") {
			t.Errorf("fields=%d: a random sensitive field is in the clear", n)
		}
	}
	for _, size := range []int{1 << 10, 64 << 10} {
		v, n := newScalePayload(size)
		if n < size*9/10 || n > size*11/10 {
			t.Errorf("payload %d: JSON is %d bytes", size, n)
		}
		env, err := w.sender.Seal(v, refdto.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		var got scalePayload
		if _, err := w.receiver.Open(env, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, v) {
			t.Errorf("payload %d: opened value differs", size)
		}
	}
}
