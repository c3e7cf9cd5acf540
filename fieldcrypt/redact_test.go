package fieldcrypt_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/schema"
)

// The account of the package example, as a log line shows it.
func ExampleRedact() {
	acct := Account{ID: "acc-1", Owner: "Ada Lovelace", SSN: "123456789", Balance: 42.5, Notes: "call back"}
	fmt.Printf("%+v\n", fieldcrypt.Redact(acct))

	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}))
	logger.Info("account received", "account", fieldcrypt.Redact(&acct))
	// Output:
	// {ID:acc-1 Owner:[redacted] SSN:[redacted] Balance:42.5 Notes:[redacted]}
	// {"level":"INFO","msg":"account received","account":{"id":"acc-1","owner":"[redacted]","ssn":"[redacted]","balance":42.5,"notes":"[redacted]"}}
}

func redactAccount() Account {
	return Account{ID: "acc-1", Owner: "Ada Lovelace", SSN: "123456789", Balance: 42.5, Notes: "call back"}
}

// redactLog renders one log line of r under key "v" with a handler made by mk.
func redactLog(r fieldcrypt.Redacted, mk func(*bytes.Buffer) slog.Handler) string {
	var buf bytes.Buffer
	slog.New(mk(&buf)).Info("m", "v", r)
	return buf.String()
}

func redactJSONHandler(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }
func redactTextHandler(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }

// redactRenderings returns every way a Redacted is printed, by name.
func redactRenderings(r fieldcrypt.Redacted) map[string]string {
	j, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return map[string]string{
		"%v": fmt.Sprintf("%v", r), "%+v": fmt.Sprintf("%+v", r), "%#v": fmt.Sprintf("%#v", r),
		"%s": fmt.Sprintf("%s", r), "%q": fmt.Sprintf("%q", r), "%x": fmt.Sprintf("%x", r),
		"%d": fmt.Sprintf("%d", r), "%10.3v": fmt.Sprintf("%10.3v", r), "String": r.String(),
		"Sprint": fmt.Sprint(r), "Sprintln": fmt.Sprintln(r), "json": string(j),
		"slog json": redactLog(r, redactJSONHandler), "slog text": redactLog(r, redactTextHandler),
		"nested %+v": fmt.Sprintf("%+v", struct{ V any }{r}), "nested json": redactJSON(map[string]any{"v": r}),
	}
}

func redactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestRedactVerbs(t *testing.T) {
	acct := redactAccount()
	for _, tc := range []struct {
		name string
		v    any
		want map[string]string
	}{
		{"value", acct, map[string]string{
			"%v":   `{acc-1 [redacted] [redacted] 42.5 [redacted]}`,
			"%s":   `{acc-1 [redacted] [redacted] 42.5 [redacted]}`,
			"%d":   `{acc-1 [redacted] [redacted] 42.5 [redacted]}`,
			"%+v":  `{ID:acc-1 Owner:[redacted] SSN:[redacted] Balance:42.5 Notes:[redacted]}`,
			"%#v":  `fieldcrypt_test.Account{ID:"acc-1", Owner:[redacted], SSN:[redacted], Balance:42.5, Notes:[redacted]}`,
			"json": `{"id":"acc-1","owner":"[redacted]","ssn":"[redacted]","balance":42.5,"notes":"[redacted]"}`,
		}},
		{"pointer", &acct, map[string]string{
			"%v":   `&{acc-1 [redacted] [redacted] 42.5 [redacted]}`,
			"%#v":  `&fieldcrypt_test.Account{ID:"acc-1", Owner:[redacted], SSN:[redacted], Balance:42.5, Notes:[redacted]}`,
			"json": `{"id":"acc-1","owner":"[redacted]","ssn":"[redacted]","balance":42.5,"notes":"[redacted]"}`,
		}},
		{"slice", []Account{acct, {ID: "acc-2"}}, map[string]string{
			"%v":   `[{acc-1 [redacted] [redacted] 42.5 [redacted]} {acc-2 [redacted] [redacted] 0 [redacted]}]`,
			"%#v":  `[]fieldcrypt_test.Account{fieldcrypt_test.Account{ID:"acc-1", Owner:[redacted], SSN:[redacted], Balance:42.5, Notes:[redacted]}, fieldcrypt_test.Account{ID:"acc-2", Owner:[redacted], SSN:[redacted], Balance:0, Notes:[redacted]}}`,
			"json": `[{"id":"acc-1","owner":"[redacted]","ssn":"[redacted]","balance":42.5,"notes":"[redacted]"},{"id":"acc-2","owner":"[redacted]","ssn":"[redacted]","balance":0,"notes":"[redacted]"}]`,
		}},
		{"map", map[string]*Account{"b": &acct, "a": nil}, map[string]string{
			"%v":   `map[a:<nil> b:&{acc-1 [redacted] [redacted] 42.5 [redacted]}]`,
			"json": `{"a":null,"b":{"id":"acc-1","owner":"[redacted]","ssn":"[redacted]","balance":42.5,"notes":"[redacted]"}}`,
		}},
		{"nil pointer", (*Account)(nil), map[string]string{
			"%v": `<nil>`, "%#v": `(*fieldcrypt_test.Account)(nil)`, "json": `null`,
		}},
		{"nil", nil, map[string]string{"%v": `<nil>`, "json": `null`}},
		// Fail closed: nothing plans these, so nothing says they are clear.
		{"string", "123456789", map[string]string{"%v": `[redacted]`, "%#v": `[redacted]`, "json": `"[redacted]"`}},
		{"int", 123456789, map[string]string{"%v": `[redacted]`, "json": `"[redacted]"`}},
		{"string map", map[string]string{"ssn": "123456789"}, map[string]string{"%v": `map[ssn:[redacted]]`}},
		{"bad tags", redactBadTags{SSN: "123456789"}, map[string]string{"%v": `[redacted]`, "%+v": `[redacted]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redactRenderings(fieldcrypt.Redact(tc.v))
			for verb, want := range tc.want {
				if got[verb] != want {
					t.Errorf("%s: got\n%s\nwant\n%s", verb, got[verb], want)
				}
			}
			for verb, s := range got {
				for _, secret := range []string{"Ada", "Lovelace", "123456789", "call back"} {
					if strings.Contains(s, secret) {
						t.Errorf("%s shows %q: %s", verb, secret, s)
					}
				}
			}
		})
	}
}

// redactBadTags does not plan (sensitive without share): Redact hides it whole.
type redactBadTags struct {
	ID  string `json:"id" share:"*"`
	SSN string `json:"ssn" sensitive:"random"`
}

func TestRedactSlog(t *testing.T) {
	r := fieldcrypt.Redact(redactAccount())
	var doc map[string]any
	line := redactLog(r, redactJSONHandler)
	if err := json.Unmarshal([]byte(line), &doc); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	want := map[string]any{"id": "acc-1", "owner": "[redacted]", "ssn": "[redacted]", "balance": 42.5, "notes": "[redacted]"}
	if !reflect.DeepEqual(doc["v"], want) {
		t.Fatalf("JSON handler: %v, want %v", doc["v"], want)
	}
	text := redactLog(r, redactTextHandler)
	if want := `v.id=acc-1 v.owner=[redacted] v.ssn=[redacted] v.balance=42.5 v.notes=[redacted]`; !strings.Contains(text, want) {
		t.Fatalf("text handler: %s\nwant it to contain %s", text, want)
	}
	// A Redacted inside a group, and as a LogValuer resolved by hand.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", slog.Group("g", slog.Any("acct", r)))
	if !strings.Contains(buf.String(), `"g":{"acct":{"id":"acc-1","owner":"[redacted]"`) {
		t.Fatalf("group: %s", buf.String())
	}
	if v := r.LogValue(); v.Kind() != slog.KindGroup || len(v.Group()) != 5 {
		t.Fatalf("LogValue: %v", v)
	}
}

// Nested values: share and sensitive tags apply at every level, for every
// recipient at once. sampleProfile's clear fields are shown, its sensitive
// and unshared ones never.
func TestRedactNested(t *testing.T) {
	p := sampleProfile()
	got := redactRenderings(fieldcrypt.Redact(&p))
	wantPlus := `&{ID:p-1 Name:[redacted] SSN:[redacted] Region:eu-west ` +
		`Address:{Street:[redacted] City:Arlington Geo:[redacted]} ` +
		`Accounts:[{IBAN:[redacted] Balance:1234.5 Kind:checking Owners:[{Name:Grace Email:[redacted]}]} ` +
		`{IBAN:[redacted] Balance:-3.25e-07 Kind:savings Owners:[]}] ` +
		`Manager:&{Name:Howard Email:[redacted]} Backup:[redacted] ` +
		`Limits:map[a/b~c:1 daily:500 monthly:10000] Secrets:[redacted] Joined:2026-01-02T03:04:05.000006+01:00 ` +
		`Birthday:[redacted] Tags:[vip beta] Raw:[redacted] ` +
		`Ledger:map[-1:<nil> 7:&{IBAN:[redacted] Balance:7 Kind: Owners:[]}] Internal:[redacted]}`
	if got["%+v"] != wantPlus {
		t.Errorf("%%+v:\n%s\nwant\n%s", got["%+v"], wantPlus)
	}
	wantJSON := `{"id":"p-1","name":"[redacted]","ssn":"[redacted]","region":"eu-west",` +
		`"address":{"street":"[redacted]","city":"Arlington","geo":"[redacted]"},` +
		`"accounts":[{"iban":"[redacted]","balance":1234.5,"kind":"checking","owners":[{"name":"Grace","email":"[redacted]"}]},` +
		`{"iban":"[redacted]","balance":-3.25e-7,"kind":"savings","owners":null}],` +
		`"manager":{"name":"Howard","email":"[redacted]"},"backup":"[redacted]",` +
		`"limits":{"a/b~c":1,"daily":500,"monthly":10000},"secrets":"[redacted]","joined":"2026-01-02T03:04:05.000006+01:00",` +
		`"birthday":"[redacted]","tags":["vip","beta"],"raw":"[redacted]",` +
		`"ledger":{"-1":null,"7":{"iban":"[redacted]","balance":7,"kind":"","owners":null}},"internal":"[redacted]"}`
	if got["json"] != wantJSON {
		t.Errorf("json:\n%s\nwant\n%s", got["json"], wantJSON)
	}
	if !json.Valid([]byte(got["json"])) {
		t.Error("MarshalJSON is not JSON")
	}
	for verb, s := range got {
		for _, secret := range redactSecrets(p) {
			if len(secret) >= 5 && strings.Contains(s, secret) { // not "0000" or "&"
				t.Errorf("%s shows %q: %s", verb, secret, s)
			}
		}
	}
}

// redactSecrets lists the values of p that no rendering may show: every
// sensitive value and every value of a field shared with nobody. Written by
// hand from the tags of Profile.
func redactSecrets(p Profile) []string {
	s := []string{p.Name, p.SSN, p.Internal, p.Address.Street, p.Address.Geo, string(p.Raw),
		base64.StdEncoding.EncodeToString(p.Raw), fmt.Sprint(p.Raw)}
	if p.Backup != nil {
		s = append(s, p.Backup.Name, p.Backup.Email)
	}
	if p.Manager != nil {
		s = append(s, p.Manager.Email)
	}
	for k, v := range p.Secrets {
		s = append(s, k, v)
	}
	if p.Birthday != nil {
		s = append(s, p.Birthday.Format(time.RFC3339Nano), p.Birthday.String())
	}
	accts := append([]Acct(nil), p.Accounts...)
	for _, a := range p.Ledger {
		if a != nil {
			accts = append(accts, *a)
		}
	}
	for _, a := range accts {
		s = append(s, a.IBAN)
		for _, o := range a.Owners {
			s = append(s, o.Email)
		}
	}
	return s
}

// redactShown lists values of p every rendering must show (clear for some
// service): Redact is not allowed to hide everything either.
func redactShown(p Profile) []string {
	s := []string{p.ID, p.Region, p.Address.City}
	s = append(s, p.Tags...)
	for _, a := range p.Accounts {
		s = append(s, a.Kind)
		for _, o := range a.Owners {
			s = append(s, o.Name)
		}
	}
	for k := range p.Limits {
		s = append(s, k)
	}
	return s
}

// Over generated profiles, no rendering shows a sensitive or unshared
// value and every rendering shows the clear ones.
func TestPropertyRedactNeverShowsSensitive(t *testing.T) {
	g := &gen{r: rand.New(rand.NewPCG(7, 11))}
	for i := range 200 {
		p := g.profile()
		r := fieldcrypt.Redact(&p)
		for verb, s := range redactRenderings(r) {
			for _, secret := range redactSecrets(p) {
				if secret != "" && strings.Contains(s, secret) {
					t.Fatalf("value %d, %s shows %q:\n%s", i, verb, secret, s)
				}
			}
			if verb == "%q" || verb == "nested json" || verb == "slog json" || verb == "slog text" {
				continue // escaped or quoted forms
			}
			for _, clear := range redactShown(p) {
				if !strings.Contains(s, clear) {
					t.Fatalf("value %d, %s hides the clear value %q:\n%s", i, verb, clear, s)
				}
			}
		}
	}
}

// redactNode is recursive through a clear pointer: a cycle is cut at the depth
// limit instead of recursing forever.
type redactNode struct {
	Name string      `json:"name" share:"*"`
	Key  string      `json:"key" share:"*" sensitive:"random"`
	Next *redactNode `json:"next" share:"*"`
}

func TestRedactCycleAndDepth(t *testing.T) {
	n := &redactNode{Name: "a", Key: "k-secret"}
	n.Next = n
	s := fmt.Sprintf("%+v", fieldcrypt.Redact(n))
	if !strings.HasPrefix(s, "&{Name:a Key:[redacted] Next:&{Name:a") || !strings.Contains(s, fieldcrypt.RedactedText) ||
		strings.Contains(s, "k-secret") || len(s) > 1<<16 {
		t.Fatalf("cycle rendered as %.300s... (%d bytes)", s, len(s))
	}
}

// A type built from a schema file renders through its plan like a Go type.
func TestRedactSchemaFileType(t *testing.T) {
	f, err := schema.ParseFile([]byte(`{"type":"redact.Payment","fields":[
		{"name":"id","type":"string","share":["*"]},
		{"name":"card","type":"string","share":["billing"],"sensitive":"random"},
		{"name":"memo","type":"string"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.New(f.Type)
	if err := json.Unmarshal([]byte(`{"id":"pay-1","card":"4111111111111111","memo":"gift"}`), v.Interface()); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%v", fieldcrypt.Redact(v.Interface())), "&{pay-1 [redacted] [redacted]}"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// Leaves that marshal themselves are shown as the JSON they send, never
// through fmt (which would print fields their JSON leaves out).
type redactHalfHidden struct {
	Public  string
	private string
}

func (h redactHalfHidden) MarshalJSON() ([]byte, error) { return json.Marshal(h.Public) }

type redactLeaves struct {
	H  redactHalfHidden `json:"h" share:"*"`
	At time.Time        `json:"at" share:"*"`
	J  json.RawMessage  `json:"j" share:"*"`
}

func TestRedactJSONLeaves(t *testing.T) {
	v := redactLeaves{H: redactHalfHidden{Public: "shown", private: "hidden-part"}, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		J: json.RawMessage(`{"x":1}`)}
	r := fieldcrypt.Redact(v)
	if got, want := fmt.Sprintf("%+v", r), `{H:shown At:2026-01-02T03:04:05Z J:{"x":1}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := redactJSON(r), `{"h":"shown","at":"2026-01-02T03:04:05Z","j":{"x":1}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	for verb, s := range redactRenderings(r) {
		if strings.Contains(s, "hidden-part") {
			t.Fatalf("%s shows what MarshalJSON leaves out: %s", verb, s)
		}
	}
}
