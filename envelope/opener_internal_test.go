package envelope

// These tests live inside the package. The first checks an ordering that no
// identity of this package can show from outside (their key statuses never
// change), namely that the key check runs before the cache is consulted.
// The others check that each fast path answers exactly as the general code
// it stands in front of.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
)

// flippingIdentity retires its key after the first successful unwrap, like
// an identity whose keyset was reloaded.
type flippingIdentity struct {
	a       *subtle.AESGCM
	retired bool
}

func (f *flippingIdentity) CheckKey(k KeyInfo, sender string) error {
	if f.retired {
		return &KeyRetiredError{KeyID: k.KeyID}
	}
	return nil
}

func (f *flippingIdentity) Unwrap(k KeyInfo, w []byte) ([]byte, error) {
	if err := f.CheckKey(k, ""); err != nil {
		return nil, err
	}
	f.retired = true
	return f.a.Decrypt(k.Wrapped, w)
}

func TestKeyCheckPrecedesCache(t *testing.T) {
	a, err := subtle.NewAESGCM(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewAEADRecipient("k1", a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(SealerConfig{Sender: "frontend", Recipient: "financial-service", To: r})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Begin("T")
	if err != nil {
		t.Fatal(err)
	}
	env, err := m.Finish([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	id := &flippingIdentity{a: a}
	o, err := NewOpener(OpenerConfig{Self: "financial-service", Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(env); err != nil {
		t.Fatal(err)
	}
	// The data key is cached now, but the key has been retired since.
	_, err = o.Open(env)
	if _, ok := err.(*KeyRetiredError); !ok {
		t.Fatalf("cached key used after retirement: %v", err)
	}
}

// mutations returns seeds and random single-byte edits of them.
func mutations(seeds []string, n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "{}[]\",:. \t\n\\/u0123456789abcdefABCDEF-+eEtrufalsn\x00\x1f\x7f\xc3\xa9"
	var out [][]byte
	for _, s := range seeds {
		out = append(out, []byte(s))
		for range n {
			b := []byte(s)
			switch i := r.IntN(len(b) + 1); r.IntN(3) {
			case 0: // replace
				if i < len(b) {
					b[i] = alphabet[r.IntN(len(alphabet))]
				}
			case 1: // insert
				b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
			case 2: // delete
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
			out = append(out, b)
		}
	}
	return out
}

var jsonSeeds = []string{
	`{}`, `[]`, `{"a":1}`, `{ "a" : [ 1 , 2.5e-3 , -0 , true , false , null , "x\u00e9\n" ] , "b" : { } }`,
	`{"id":"ord_01J9Z7Q4X8M2","customer":{"$enc":"random","ct":"-TgfjCxZWRRVxnMHhVPUVyyNTDRliHC-fQzr8Q09_t2iIOJ8M-hsGJjg"},"amount":129.95,"items":[{"sku":"BK-001","qty":1,"price":49.95}]}`,
	`"plain"`, `"esc\"aped\\"`, `12`, `-1.5E+10`, `0.`, `01`, `"\ud83d\ude00"`, `[[[[]]]]`, `{"a":{"b":{"c":[1,{"d":null}]}}}`,
	strings.Repeat("[", 999) + strings.Repeat("]", 999),
	strings.Repeat("[", 1000) + strings.Repeat("]", 1000),
	strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
	`{"k":"` + strings.Repeat("abcdefgh", 9) + `\t` + strings.Repeat("é", 5) + `"}`,
	`[{"$enc":"deterministic","ct":"AWf6TRJQi9lg0Hym3VbcpIGH3Dc4X50oW1nb9hbtuDW6nb9ODOw"},{"$enc":"random","ct":"a\u0041b"}]`,
	`{"$enc":"random","ct":"AB","x":1}`, `{"$enc":"random","ct":""}`, `{"$enc":"random","ct":"A"} `,
	strings.Repeat("[", 999) + `{"$enc":"random","ct":"AA"}` + strings.Repeat("]", 999),
	strings.Repeat("[", 1000) + `{"$enc":"random","ct":"AA"}` + strings.Repeat("]", 1000),
}

func TestSkipValueMatchesScanner(t *testing.T) {
	for _, b := range mutations(jsonSeeds, 300) {
		for _, depth := range []int{1, 3} {
			s := &scanner{b: b}
			err := s.value(depth)
			end, ok := skipValue(b, 0, depth)
			if ok != (err == nil) || ok && end != s.i {
				t.Fatalf("%q at depth %d: skipValue = %d, %v; scanner = %d, %v", b, depth, end, ok, s.i, err)
			}
		}
	}
}

func TestValidJSONMatchesJSONValid(t *testing.T) {
	seeds := append(append([]string{}, jsonSeeds...), `true`, `false`, `null`, `nul`, `truex`, ` 1`, `1 `, `""`, `"`, `"a\x80b"`, `-`, `1e`, `2.`,
		"\"\xff\xfe\"", "\"Zo\xc3\xab\"", "\"abcdefgh\xc3\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "{\"k\xff\":1}", "[\"\xc3\xa9\",\"\xe9\"]")
	for _, b := range mutations(seeds, 300) {
		// SPEC.md part 1, 8.1: one JSON value, in UTF-8. json.Valid does
		// not look at the bytes inside strings.
		if got, want := validJSON(b), utf8.Valid(b) && json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, want %v (json.Valid %v)", b, got, want, json.Valid(b))
		}
	}
}

func TestIssuedAtFastPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	seeds := []string{"2026-11-29T16:20:46.123Z", "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
		"9999-12-31T23:59:59.999Z", "2026-04-31T10:00:00.000Z", "2026-11-29T24:00:00.000Z", "2026-11-29T16:60:46.123Z",
		"2026-11-29T16:20:60.123Z", "2026-00-10T16:20:46.123Z", "2026-13-10T16:20:46.123Z", "2026-11-00T16:20:46.123Z",
		"2026-11-29T16:20:46,123Z", "2026-11-29T16:20:46.+12Z", "2100-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z"}
	for _, b := range mutations(seeds, 200) {
		v := string(b)
		if len(v) != len(iatLayout) {
			continue
		}
		got, gerr := parseIssuedAt(v)
		gotB, berr := parseIssuedAt(b)
		// The oracle: the exact shape (SPEC.md part 1, 5.1), then
		// time.Parse for the calendar. time.Parse alone is too lenient
		// (a comma before the milliseconds, a sign among their digits).
		want, werr := time.Parse(iatLayout, v)
		if !strictIat.MatchString(v) {
			werr = errors.New("not YYYY-MM-DDTHH:MM:SS.mmmZ")
		}
		if (gerr == nil) != (werr == nil) || (berr == nil) != (werr == nil) || werr == nil && (!got.Equal(want) || !gotB.Equal(want)) {
			t.Fatalf("%q: %v %v / %v %v, want %v %v", v, got, gerr, gotB, berr, want, werr)
		}
	}
	for range 2000 {
		tm := time.UnixMilli(r.Int64N(253402300800000)).In(time.FixedZone("x", r.IntN(50000)-25000))
		if got, want := string(appendIssuedAt(nil, tm)), tm.UTC().Format(iatLayout); got != want {
			t.Fatalf("appendIssuedAt(%v) = %s, want %s", tm, got, want)
		}
	}
}

var strictIat = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)

func TestAppendUUIDMatchesUUID(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		var u [16]byte
		for i := range u {
			u[i] = byte(r.Uint32())
		}
		if got, want := string(appendUUID(nil, &u)), uuid.UUID(u).String(); got != want {
			t.Fatalf("appendUUID = %s, want %s", got, want)
		}
	}
}

func TestCanonicalMarkerMatchesParser(t *testing.T) {
	ct := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789ab-ciphertext"))
	seeds := []string{
		`{"$enc":"random","ct":"` + ct + `"}`, `{"$enc":"deterministic","ct":"` + ct + `"}`,
		`{"ct":"` + ct + `","$enc":"random"}`, ` {"$enc":"random","ct":"` + ct + `"}`, `{"$enc":"random","ct":"` + ct + `"} `,
		`{"$enc":"random","ct":"` + ct + `","x":1}`, `{"$enc":"random","ct":"AB="}`, `{"$enc":"random","ct":"A"}`,
		`{"$enc":"random","ct":""}`, `{"$enc":"random","ct":"AB"}`, `{"$enc":"random","ct":"AC"}`,
	}
	general := func(b []byte, mode Mode) ([]byte, error) {
		// parseMarker without its fast path.
		if !utf8.Valid(b) {
			return nil, parseErr("invalid UTF-8 in marker")
		}
		s := &scanner{b: b}
		s.ws()
		var enc string
		var out []byte
		var haveEnc, haveCT bool
		err := s.members(func(name string) error {
			var err error
			switch name {
			case "$enc":
				enc, err = s.str()
				haveEnc = true
			case "ct":
				out, err = s.b64()
				haveCT = true
			default:
				err = parseErr("unknown member in marker")
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if !haveEnc || !haveCT {
			return nil, parseErr("missing member in marker")
		}
		s.ws()
		if !s.eof() {
			return nil, parseErr("trailing data after the marker")
		}
		if enc != mode.String() {
			return nil, ErrCannotOpen
		}
		return out, nil
	}
	for _, b := range mutations(seeds, 300) {
		for _, mode := range []Mode{Random, Deterministic} {
			got, gerr := parseMarker(b, mode)
			want, werr := general(b, mode)
			if (gerr == nil) != (werr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("%q (%v): parseMarker = %x, %v; general parser = %x, %v", b, mode, got, gerr, want, werr)
			}
		}
	}
}

func TestCanonicalParseMatchesGeneral(t *testing.T) {
	hdr := `{"v":1,"id":"01a2281b-e3ab-7dcf-8db9-060c5fb4c713","snd":"frontend","rcp":"financial-service",` +
		`"typ":"accounts.Account","iat":"2026-11-29T16:20:46.123Z","key":{"alg":"hpke","kid":"2046500050",` +
		`"wk":"AXn7HNIY7rbEEwHwTVeFMdMn492zhyzd2XCUdevAwW4mWX16SJ6PCZwWDpZKebKAuDS8M1wWxt77BkSj4nn9ucDPxWyJgpGHqqEssOeqJ6JZq3yNNA"}}`
	data := `{"id":"acc-1","owner":{"$enc":"random","ct":"C4YfqBK7F-BBwE6G0EgvduCMU7zc2b5OVTfnt4bK3VCnAG9cFyw"},"balance":12.5}`
	tag := `"Ep_MER6j80P2AdO_X9qY1ZfLMAxjivXi_3fAvQ"`
	seeds := []string{
		`{"hdr":` + hdr + `,"data":` + data + `,"tag":` + tag + `}`,
		`{"hdr":` + strings.Replace(hdr, `"hpke"`, `"aead"`, 1) + `,"data":{},"tag":` + tag + `}`,
		`{"hdr":` + strings.Replace(hdr, `accounts.Account`, `a\"b`, 1) + `,"data":{},"tag":` + tag + `}`,
		`{"data":` + data + `,"hdr":` + hdr + `,"tag":` + tag + `}`,
		`{"hdr":` + hdr + `,"data":` + data + `,"tag":` + tag + `} `,
	}
	unscannedOnly := 0
	for _, b := range mutations(seeds, 1500) {
		if !utf8.Valid(b) {
			continue
		}
		var fast, unscanned, general Envelope
		var ft, ut, gt [tagSize]byte
		ok := parseCanonical(&fast, &ft, b, true)
		okU := parseCanonical(&unscanned, &ut, b, false)
		err := parseGeneral(&general, &gt, b)
		if ok && (err != nil || !reflect.DeepEqual(fast, general)) {
			t.Fatalf("%s:\ncanonical %+v\ngeneral   %+v, %v", b, fast, general, err)
		}
		if !ok && !reflect.DeepEqual(fast, Envelope{}) {
			t.Fatalf("%s: a refused canonical parse changed the envelope", b)
		}
		// Without the data scan: everything the scanning parse takes, and
		// more only when the data is not one JSON object, which
		// dataParseError then reports as the general parser does.
		if ok && (!okU || !reflect.DeepEqual(unscanned, fast)) {
			t.Fatalf("%s: the unscanned parse differs: %+v", b, unscanned)
		}
		if okU && !ok {
			perr := dataParseError(b, unscanned.Data)
			var pe *ParseError
			if err == nil || perr == nil || !errors.As(perr, &pe) || perr.Error() != err.Error() {
				t.Fatalf("%s: unscanned parse took data the scan refuses (%v); dataParseError %v", b, err, perr)
			}
			unscannedOnly++
		}
		if okU && ok && dataParseError(b, unscanned.Data) != nil {
			t.Fatalf("%s: dataParseError refuses data the scan takes", b)
		}
		if !okU && !reflect.DeepEqual(unscanned, Envelope{}) {
			t.Fatalf("%s: a refused unscanned parse changed the envelope", b)
		}
	}
	if unscannedOnly == 0 {
		t.Fatal("no mutation had malformed data inside a canonical frame: the unscanned parse went untested")
	}
	var e Envelope
	if !parseCanonical(&e, nil, []byte(seeds[0]), true) || parseCanonical(&e, nil, []byte(seeds[3]), true) {
		t.Fatal("the canonical parser does not take canonical envelopes, or takes others")
	}
}
