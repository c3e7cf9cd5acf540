package fieldcrypt

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-playground/validator/v10"

	"github.com/lifenavigator/crossservice/internal/refdto"
)

// quickAll carries every tag quickCheck answers for, on every kind it
// accepts, beside fields it must leave alone.
type quickAll struct {
	ID      string    `validate:"required"`
	Email   string    `validate:"required,email"`
	Code    string    `validate:"len=3"`
	Name    string    `validate:"min=2,max=5"`
	Digits  string    `validate:"numeric"`
	Opt     string    `validate:"omitempty,numeric,len=4"`
	OptMail string    `validate:"omitempty,email"`
	N       int       `validate:"required"`
	U       uint8     `validate:"required"`
	F       float64   `validate:"required"`
	B       bool      `validate:"required"`
	At      time.Time `validate:"required"`
	Free    []struct{ X int }
	Skipped string `validate:"-"`
	hidden  string //lint:ignore U1000 an unexported field validator never sees
}

// validatorSays is the default validator's answer.
func validatorSays(t testing.TB, v any) bool {
	t.Helper()
	return newValidator().Struct(v) == nil
}

// quickSays is quickCheck's answer for v (a pointer to a struct).
func quickSays(t testing.TB, v any) bool {
	t.Helper()
	q := compileQuick(reflect.TypeOf(v).Elem())
	if q == nil {
		t.Fatalf("%T is not eligible", v)
	}
	return q.ok(reflect.ValueOf(v).Elem())
}

var quickStrings = []string{"", "a", "ab", "abc", "abcd", "abcde", "abcdef", "éé", "éèê", "😀😀😀", "\xff\xfe\xfd",
	"0", "12", "123", "1234", "-1", "+1", "1.5", "1.", ".5", "1e3", "12a", " 12", "12\n", "٣", "1.2.3", "--1",
	"ada@example.com", "a@b.c", "a@b", "a.b@c.de", "a..b@c.de", "\"a\"@b.cd", "a@b.c1", "user@[127.0.0.1]",
	"x@localhost", "ADA@EXAMPLE.COM", "a@b@c.de"}

// randomQuickAll picks each field from the strings above or, most of the
// time, from values that pass its tags, so that both answers are common.
func randomQuickAll(r *rand.Rand) quickAll {
	s := func(good ...string) string {
		if r.IntN(10) < 7 {
			return good[r.IntN(len(good))]
		}
		return quickStrings[r.IntN(len(quickStrings))]
	}
	v := quickAll{ID: s("x", "é"), Email: s("ada@example.com", "a.b-c+d@sub.example.co.uk"), Code: s("abc", "éèê"),
		Name: s("ab", "abcde", "😀😀😀"), Digits: s("12", "-1.5", "+0"), Opt: s("", "1234"), OptMail: s("", "a@b.cd"),
		N: r.IntN(5) - 1, U: uint8(r.IntN(4)), F: float64(r.IntN(5)) - 1, B: r.IntN(4) > 0}
	if r.IntN(4) > 0 {
		v.At = time.Unix(int64(r.IntN(1e9)), 0)
	}
	return v
}

// TestQuickCheckAgreesWithValidator: whenever quickCheck accepts a value,
// validator accepts it; and on these inputs the two agree both ways, so the
// quick path is taken whenever it could be.
func TestQuickCheckAgreesWithValidator(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 20000 {
		v := randomQuickAll(r)
		q, full := quickSays(t, &v), validatorSays(t, &v)
		if q && !full {
			t.Fatalf("quickCheck accepts what validator refuses: %+v", v)
		}
		if q != full && !strings.Contains(v.Email+v.OptMail, "@") {
			// Only the email check may refuse what validator accepts
			// (plainEmail is the common form only).
			t.Fatalf("quickCheck %v, validator %v: %+v", q, full, v)
		}
		if q {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatal("no value accepted: the test exercises nothing")
	}
	t.Logf("%d of 20000 accepted", accepted)
}

func FuzzQuickCheck(f *testing.F) {
	for _, s := range quickStrings {
		f.Add(s, s, 1, true)
	}
	f.Fuzz(func(t *testing.T, a, b string, n int, flag bool) {
		for _, v := range []quickAll{
			{ID: a, Email: b, Code: a, Name: b, Digits: a, Opt: b, OptMail: a, N: n, U: uint8(n), F: float64(n), B: flag, At: time.Unix(int64(n), 0)},
			{ID: "x", Email: "ada@example.com", Code: a, Name: "abc", Digits: b, Opt: a, OptMail: b, N: 1, U: 1, F: 1, B: true, At: time.Unix(1, 0)},
		} {
			if quickSays(t, &v) && !validatorSays(t, &v) {
				t.Fatalf("quickCheck accepts what validator refuses: %+v", v)
			}
		}
	})
}

// TestQuickCheckEligibility: the reference DTO takes the quick path; a tag
// or a shape quickCheck does not know sends a type to validator.
func TestQuickCheckEligibility(t *testing.T) {
	if compileQuick(reflect.TypeFor[refdto.Order]()) == nil {
		t.Error("refdto.Order is not eligible")
	}
	type inner struct {
		X string `validate:"required"`
	}
	for name, typ := range map[string]reflect.Type{
		"unknown tag": reflect.TypeFor[struct {
			A string `validate:"uuid"`
		}](),
		"or": reflect.TypeFor[struct {
			A string `validate:"numeric|email"`
		}](),
		"octal parameter": reflect.TypeFor[struct {
			A string `validate:"len=010"`
		}](),
		"hex parameter": reflect.TypeFor[struct {
			A string `validate:"len=0x3"`
		}](),
		"huge parameter": reflect.TypeFor[struct {
			A string `validate:"max=99999999"`
		}](),
		"late omitempty": reflect.TypeFor[struct {
			A string `validate:"len=3,omitempty"`
		}](),
		"len on a number": reflect.TypeFor[struct {
			A int `validate:"len=3"`
		}](),
		"pointer": reflect.TypeFor[struct {
			A *string `validate:"required"`
		}](),
		"slice": reflect.TypeFor[struct {
			A []string `validate:"required"`
		}](),
		"nested tags": reflect.TypeFor[struct{ In inner }](),
		"tagged struct": reflect.TypeFor[struct {
			In inner `validate:"required"`
		}](),
		"embedded": reflect.TypeFor[struct{ inner }](),
		"dive": reflect.TypeFor[struct {
			A []string `validate:"dive,required"`
		}](),
		"valuer": reflect.TypeFor[struct {
			A valuerString `validate:"required"`
		}](),
		"empty tag part": reflect.TypeFor[struct {
			A string `validate:"required,"`
		}](),
		"parameter on a rule": reflect.TypeFor[struct {
			A string `validate:"required=1"`
		}](),
	} {
		if compileQuick(typ) != nil {
			t.Errorf("%s: eligible, want validator", name)
		}
	}
}

type valuerString string

func (v valuerString) ValidatorValue() any { return string(v) }

var _ validator.Valuer = valuerString("")
