package fieldcrypt_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-playground/validator/v10"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
)

func TestSealValidation(t *testing.T) {
	w := newWorld(t)
	p := sampleProfile()
	p.ID = ""
	p.SSN = "12345678X"
	p.Accounts[1].IBAN = ""
	_, err := w.sender.Seal(&p, analytics) // analytics does not even receive ssn: the whole value is checked
	var ve *fieldcrypt.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Seal = %v, want a *ValidationError", err)
	}
	want := []fieldcrypt.Violation{
		{Path: "Profile.id", Tag: "required"},
		{Path: "Profile.ssn", Tag: "numeric"},
		{Path: "Profile.accounts[].iban", Tag: "required"},
	}
	if !reflect.DeepEqual(ve.Violations, want) {
		t.Errorf("violations %+v\nwant %+v", ve.Violations, want)
	}
	if strings.Contains(err.Error(), "12345678X") || strings.Contains(err.Error(), "[1]") {
		t.Errorf("error names a value or an index: %v", err)
	}
	if errors.Is(err, envelope.ErrCannotOpen) {
		t.Errorf("a sealing error matches ErrCannotOpen")
	}
}

// Flagged checks a validation that only the receiver enforces, shared and
// unshared required fields at two levels.
type Flagged struct {
	Code   string         `json:"code" share:"*" validate:"allowed"`
	Hidden string         `json:"hidden" validate:"required"`
	Items  []Sub          `json:"items" share:"*" validate:"dive"`
	ByKey  map[string]Sub `json:"by_key" share:"*" validate:"dive"`
	Nested Sub            `json:"nested" share:"*"`
	Base
}

type Base struct {
	Tenant  string `json:"tenant" share:"*" validate:"allowed"`
	Private string `json:"private" validate:"required"`
}

type Sub struct {
	V string `json:"v" share:"*" validate:"allowed"`
	H string `json:"h" validate:"required"`
}

func validatorWith(allowed func(string) bool) *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			return f.Name
		}
		return name
	})
	if err := v.RegisterValidation("allowed", func(fl validator.FieldLevel) bool {
		return allowed(fl.Field().String())
	}); err != nil {
		panic(err)
	}
	return v
}

func TestOpenValidation(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	lax := front.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(string) bool { return true })}, fin)
	strict := fin.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(s string) bool { return s != "blocked" })})
	ok := Sub{V: "ok", H: "h"}
	valid := Flagged{Code: "ok", Hidden: "h", Items: []Sub{ok, ok}, ByKey: map[string]Sub{"a.b]": ok},
		Nested: ok, Base: Base{Tenant: "t", Private: "p"}}
	for _, tc := range []struct {
		name   string
		mutate func(*Flagged)
		path   string
	}{
		{"valid (unshared required fields are absent, not invalid)", func(*Flagged) {}, ""},
		{"top level", func(f *Flagged) { f.Code = "blocked" }, "Flagged.code"},
		{"in a slice", func(f *Flagged) { f.Items = []Sub{ok, {V: "blocked", H: "h"}} }, "Flagged.items[].v"},
		{"in a map", func(f *Flagged) { f.ByKey = map[string]Sub{"secret-key": {V: "blocked", H: "h"}} }, "Flagged.by_key[].v"},
		{"nested", func(f *Flagged) { f.Nested.V = "blocked" }, "Flagged.nested.v"},
		{"promoted", func(f *Flagged) { f.Tenant = "blocked" }, "Flagged.Base.tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := valid
			v.Items = slices.Clone(valid.Items)
			tc.mutate(&v)
			env, err := lax.Seal(&v, financial)
			if err != nil {
				t.Fatal(err)
			}
			dst := Flagged{Code: "before"}
			_, err = strict.Open(env, &dst)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				return
			}
			var ve *fieldcrypt.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, envelope.ErrCannotOpen) {
				t.Fatalf("Open = %v, want a *ValidationError matching ErrCannotOpen", err)
			}
			if len(ve.Violations) != 1 || ve.Violations[0] != (fieldcrypt.Violation{Path: tc.path, Tag: "allowed"}) {
				t.Errorf("violations %+v, want %s", ve.Violations, tc.path)
			}
			if strings.Contains(err.Error(), "blocked\"") || strings.Contains(err.Error(), "secret-key") {
				t.Errorf("error names a value: %v", err)
			}
			if !reflect.DeepEqual(dst, Flagged{Code: "before"}) {
				t.Errorf("dst changed")
			}
		})
	}
}

func TestBadValidateTag(t *testing.T) {
	type BadTag struct {
		A string `json:"a" share:"*" validate:"nosuchvalidation"`
	}
	w := newWorld(t)
	if _, err := w.sender.Seal(&BadTag{A: "x"}, financial); err == nil {
		t.Fatal("a malformed validate tag was accepted")
	}
}

func TestKeysetIO(t *testing.T) {
	kekHandle, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	kek, err := aead.New(kekHandle)
	if err != nil {
		t.Fatal(err)
	}
	otherHandle, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	otherKEK, _ := aead.New(otherHandle)

	fin := newParty(t, financial)
	var enc bytes.Buffer
	if err := fieldcrypt.WriteKeyset(&enc, fin.priv, kek); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc.Bytes(), []byte("encryptedKeyset")) {
		t.Errorf("not Tink's encrypted JSON form: %s", enc.Bytes())
	}
	if _, err := fieldcrypt.ReadKeyset(bytes.NewReader(enc.Bytes()), otherKEK); err == nil {
		t.Errorf("read under the wrong KEK")
	}
	priv, err := fieldcrypt.ReadKeyset(bytes.NewReader(enc.Bytes()), kek)
	if err != nil {
		t.Fatal(err)
	}
	if err := fieldcrypt.WriteKeyset(&enc, fin.priv, nil); err == nil {
		t.Errorf("WriteKeyset without a KEK")
	}
	if _, err := fieldcrypt.ReadKeyset(&enc, nil); err == nil {
		t.Errorf("ReadKeyset without a KEK")
	}

	var pub bytes.Buffer
	if err := fieldcrypt.WritePublicKeyset(&pub, fin.priv); err == nil {
		t.Errorf("a private keyset was written as public")
	}
	pub.Reset()
	if err := fieldcrypt.WritePublicKeyset(&pub, fin.pub); err != nil {
		t.Fatal(err)
	}
	pubH, err := fieldcrypt.ReadPublicKeyset(&pub)
	if err != nil {
		t.Fatal(err)
	}
	var clear bytes.Buffer
	if err := insecurekeyset.Write(&clear, fin.priv); err != nil {
		t.Fatal(err)
	}
	if _, err := fieldcrypt.ReadPublicKeyset(bytes.NewReader(clear.Bytes())); err == nil {
		t.Errorf("ReadPublicKeyset accepted secret keys")
	}
	clearPriv, err := insecurekeyset.Read(&clear)
	if err != nil {
		t.Fatal(err)
	}

	// The keysets read back seal and open.
	front := newParty(t, frontend)
	to, err := envelope.NewHPKERecipient(pubH)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := fieldcrypt.New(fieldcrypt.Config{Self: frontend,
		Recipients: map[string]fieldcrypt.Recipient{financial: {To: to, Deterministic: fin.det}}})
	if err != nil {
		t.Fatal(err)
	}
	p := sampleProfile()
	env, err := sender.Seal(&p, financial)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*keyset.Handle{"encrypted": priv, "cleartext": clearPriv} {
		r := &party{name: financial, priv: h, det: fin.det}
		var out Profile
		if _, err := r.codec(t, front).Open(env, &out); err != nil || out.SSN != p.SSN {
			t.Errorf("%s keyset: %v", name, err)
		}
	}
}

type Deep struct {
	V    string `json:"v" share:"*" validate:"allowed"`
	H    string `json:"h" validate:"required"`
	Next *Deep  `json:"next" share:"*"`
}

// Validation after opening follows the projection at any depth, past the
// namespaces the filter enumerates ahead of time.
func TestOpenValidationDeep(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	lax := front.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(string) bool { return true })}, fin)
	strict := fin.codecWith(t, fieldcrypt.Config{Validator: validatorWith(func(s string) bool { return s != "blocked" })})
	chain := func(bad int) *Deep {
		var d *Deep
		for i := 7; i >= 0; i-- {
			v := "ok"
			if i == bad {
				v = "blocked"
			}
			d = &Deep{V: v, H: "h", Next: d}
		}
		return d
	}
	for bad := -1; bad < 8; bad++ {
		env, err := lax.Seal(chain(bad), financial)
		if err != nil {
			t.Fatal(err)
		}
		var out Deep
		_, err = strict.Open(env, &out)
		var ve *fieldcrypt.ValidationError
		switch {
		case bad < 0 && err != nil:
			t.Errorf("valid chain: %v", err)
		case bad >= 0 && !errors.As(err, &ve):
			t.Errorf("blocked at depth %d: %v, want a *ValidationError", bad, err)
		case bad >= 0 && ve.Violations[0].Path != "Deep"+strings.Repeat(".next", bad)+".v":
			t.Errorf("blocked at depth %d: path %s", bad, ve.Violations[0].Path)
		}
	}
}

// Contact has an e-mail address checked by the default validator, whose
// e-mail check has a fast path of its own.
type Contact struct {
	Email string `json:"email" share:"*" validate:"email"`
}

// TestDefaultEmailCheck compares the default validator's email check, as
// Seal applies it, with go-playground/validator's own on plain and odd
// addresses: the fast path must never accept what the built-in check
// refuses, nor the other way round.
func TestDefaultEmailCheck(t *testing.T) {
	w := newWorld(t)
	builtin := validator.New()
	r := rand.New(rand.NewPCG(7, 8))
	pick := func(set string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[r.IntN(len(set))]
		}
		return string(b)
	}
	const (
		letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		label   = letters + "0123456789-"
		atext   = label + "!#$%&'*+/=?^_`{|}~"
		odd     = ".@-\"\\ ()<>[]:;,é\x00\t\r\n"
	)
	addrs := []string{"ada@example.com", "a.b-c+d@sub.example.co.uk", "x@y.z", "", "a@b", "a@b.c1", "a@-b.c", "a@b-.c",
		".a@b.cd", "a.@b.cd", "a..b@c.de", "a@b..cd", "a@b.cd.", `"q"@b.cd`, "a b@c.de", "Name <a@b.cd>", "a@[1.2.3.4]",
		strings.Repeat("l", 64) + "@b.cd", strings.Repeat("l", 65) + "@b.cd", "a@" + strings.Repeat("d", 63) + ".cd",
		"a@" + strings.Repeat("d", 64) + ".cd", "a@" + strings.Repeat("d.", 125) + "cd", "a@" + strings.Repeat("d.", 126) + "cd"}
	for range 1500 {
		var d []string
		for range 1 + r.IntN(3) {
			d = append(d, pick(label, 1+r.IntN(8)))
		}
		d = append(d, pick(letters, 1+r.IntN(4)))
		a := pick(atext, 1+r.IntN(10)) + "." + pick(atext, 1+r.IntN(5)) + "@" + strings.Join(d, ".")
		if r.IntN(3) == 0 { // and a mistake somewhere
			i := r.IntN(len(a))
			a = a[:i] + pick(odd, 1) + a[i+1:]
		}
		addrs = append(addrs, a)
	}
	fast, refused := 0, 0
	for _, a := range addrs {
		want := builtin.Var(a, "email") == nil
		_, err := w.sender.Seal(&Contact{Email: a}, financial)
		var ve *fieldcrypt.ValidationError
		switch {
		case err != nil && !errors.As(err, &ve):
			t.Fatalf("Seal(%q) = %v", a, err)
		case (err == nil) != want:
			t.Fatalf("Seal(%q) = %v, built-in email check passes: %v", a, err, want)
		case want:
			fast++
		default:
			refused++
		}
	}
	if fast < 500 || refused < 100 {
		t.Fatalf("%d accepted and %d refused: the corpus does not exercise both answers", fast, refused)
	}
}

// Violations as fieldcrypt reports them, from a validator's own errors.
func violationsOf(err error) []fieldcrypt.Violation {
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return nil
	}
	var out []fieldcrypt.Violation
	for _, fe := range ves {
		ns := fe.Namespace()
		var b strings.Builder
		for i := 0; i < len(ns); i++ {
			if ns[i] != '[' {
				b.WriteByte(ns[i])
				continue
			}
			b.WriteString("[]")
			for i < len(ns) && !(ns[i] == ']' && (i+1 == len(ns) || ns[i+1] == '.' || ns[i+1] == '[')) {
				i++
			}
		}
		out = append(out, fieldcrypt.Violation{Path: b.String(), Tag: fe.Tag()})
	}
	return out
}

// TestDefaultValidationMatchesFull checks that the default validator, which
// skips the fields where nothing can fail, finds exactly what a full
// validation of the value finds.
func TestDefaultValidationMatchesFull(t *testing.T) {
	w := newWorld(t)
	full := validator.New(validator.WithRequiredStructEnabled())
	full.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			return f.Name
		}
		return name
	})
	profiles := map[string]func(*Profile){
		"valid":          func(*Profile) {},
		"no id":          func(p *Profile) { p.ID = "" },
		"short ssn":      func(p *Profile) { p.SSN = "12" },
		"letters in ssn": func(p *Profile) { p.SSN = "12345678X" },
		"account iban":   func(p *Profile) { p.Accounts[1].IBAN = "" },
		"all":            func(p *Profile) { p.ID, p.SSN, p.Accounts[0].IBAN = "", "x", "" },
	}
	for name, mutate := range profiles {
		p := sampleProfile()
		p.Accounts = slices.Clone(p.Accounts)
		mutate(&p)
		_, err := w.sender.Seal(&p, financial)
		var ve *fieldcrypt.ValidationError
		errors.As(err, &ve)
		want := violationsOf(full.Struct(&p))
		if (ve == nil) != (want == nil) || ve != nil && !reflect.DeepEqual(ve.Violations, want) {
			t.Errorf("%s: Seal = %v, full validation finds %+v", name, err, want)
		}
	}
}

// TestOpenDefaultValidation: a recipient with the default validator checks
// what it received, and only that.
func TestOpenDefaultValidation(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	noChecks := validator.New()
	noChecks.SetTagName("no-such-tag") // a sender that validates nothing
	lax := front.codecWith(t, fieldcrypt.Config{Validator: noChecks}, fin)
	strict := fin.codec(t)
	type Received struct {
		ID       string  `json:"id" share:"*" validate:"required"`
		Email    string  `json:"email" share:"*" sensitive:"random" validate:"required,email"`
		Currency string  `json:"currency" share:"*" validate:"len=3"`
		Hidden   string  `json:"hidden" validate:"required"`
		Nested   Contact `json:"nested" share:"*"`
		Plain    Person  `json:"plain" share:"*"`
	}
	valid := Received{ID: "r-1", Email: "ada@example.com", Currency: "EUR", Hidden: "h", Nested: Contact{Email: "b@example.org"}}
	for _, tc := range []struct {
		name   string
		mutate func(*Received)
		want   []fieldcrypt.Violation
	}{
		{"valid, hidden field absent", func(r *Received) { r.Hidden = "" }, nil},
		{"no id", func(r *Received) { r.ID = "" }, []fieldcrypt.Violation{{Path: "Received.id", Tag: "required"}}},
		{"bad email", func(r *Received) { r.Email = "ada at example" }, []fieldcrypt.Violation{{Path: "Received.email", Tag: "email"}}},
		{"currency", func(r *Received) { r.Currency = "EURO" }, []fieldcrypt.Violation{{Path: "Received.currency", Tag: "len"}}},
		{"nested", func(r *Received) { r.Nested.Email = "@x.y" }, []fieldcrypt.Violation{{Path: "Received.nested.email", Tag: "email"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := valid
			tc.mutate(&v)
			env, err := lax.Seal(&v, financial)
			if err != nil {
				t.Fatal(err)
			}
			var dst Received
			_, err = strict.Open(env, &dst)
			var ve *fieldcrypt.ValidationError
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Open = %v", err)
			case tc.want != nil && (!errors.As(err, &ve) || !reflect.DeepEqual(ve.Violations, tc.want)):
				t.Fatalf("Open = %v, want violations %+v", err, tc.want)
			case tc.want != nil && dst != (Received{}):
				t.Fatal("dst changed")
			}
		})
	}
}

// Quick has only tags the codec checks without validator (see quickCheck):
// refusals still come from validator, with its paths and tags, and a tagged
// field another recipient receives is not checked on opening.
type Quick struct {
	ID    string  `json:"id" share:"*" validate:"required"`
	Email string  `json:"email" share:"financial-service" validate:"required,email"`
	Code  string  `json:"code" share:"financial-service" validate:"omitempty,len=3,numeric"`
	N     int     `json:"n" share:"*" validate:"required"`
	Other string  `json:"other" share:"analytics-service" validate:"required,min=2"`
	F     float64 `json:"f" share:"*"`
}

func TestQuickValidationAnswersAsValidator(t *testing.T) {
	front, fin := newParty(t, frontend), newParty(t, financial)
	sender := front.codec(t, fin)
	none := validator.New()
	none.SetTagName("no-such-tag") // a sender that checks nothing
	lax := front.codecWith(t, fieldcrypt.Config{Validator: none}, fin)
	opener := fin.codec(t, front)
	valid := Quick{ID: "q1", Email: "ada@example.com", Code: "123", N: 1, Other: "xy"}

	env, err := sender.Seal(&valid, financial)
	if err != nil {
		t.Fatal(err)
	}
	var got Quick
	if _, err := opener.Open(env, &got); err != nil {
		t.Fatalf("Open of a valid value: %v", err)
	}
	// The value checked on opening lacks Other (not shared with the
	// financial service): absent, not invalid.
	if got.Other != "" || got.Email != valid.Email {
		t.Fatalf("opened %+v", got)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*Quick)
		seal   []fieldcrypt.Violation // what Seal says (the whole value)
		open   []fieldcrypt.Violation // what Open says of the lax sender's envelope; nil: it opens
	}{
		{"email not an address", func(q *Quick) { q.Email = "not an address" },
			[]fieldcrypt.Violation{{Path: "Quick.email", Tag: "email"}}, []fieldcrypt.Violation{{Path: "Quick.email", Tag: "email"}}},
		{"email validator accepts but the quick check does not", func(q *Quick) { q.Email = `"a b"@example.com` }, nil, nil},
		{"code too long", func(q *Quick) { q.Code = "1234" },
			[]fieldcrypt.Violation{{Path: "Quick.code", Tag: "len"}}, []fieldcrypt.Violation{{Path: "Quick.code", Tag: "len"}}},
		{"code empty (omitempty)", func(q *Quick) { q.Code = "" }, nil, nil},
		{"n zero", func(q *Quick) { q.N = 0 },
			[]fieldcrypt.Violation{{Path: "Quick.n", Tag: "required"}}, []fieldcrypt.Violation{{Path: "Quick.n", Tag: "required"}}},
		{"other too short: Seal checks it, financial never receives it", func(q *Quick) { q.Other = "x" },
			[]fieldcrypt.Violation{{Path: "Quick.other", Tag: "min"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := valid
			tc.mutate(&v)
			_, err := sender.Seal(&v, financial)
			checkViolations(t, "Seal", err, tc.seal)
			env, err := lax.Seal(&v, financial)
			if err != nil {
				t.Fatal(err)
			}
			dst := Quick{ID: "before"}
			_, err = opener.Open(env, &dst)
			checkViolations(t, "Open", err, tc.open)
			if tc.open != nil && dst != (Quick{ID: "before"}) {
				t.Errorf("dst changed on a refused Open")
			}
		})
	}
}

func checkViolations(t *testing.T, op string, err error, want []fieldcrypt.Violation) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s = %v, want success", op, err)
		}
		return
	}
	var ve *fieldcrypt.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s = %v, want a *ValidationError", op, err)
	}
	if !reflect.DeepEqual(ve.Violations, want) {
		t.Errorf("%s violations %+v, want %+v", op, ve.Violations, want)
	}
}
