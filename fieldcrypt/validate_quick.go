package fieldcrypt

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/schema"
)

// quickCheck answers "does validator accept this value?" for the types whose
// validate tags are all among the default validator's most common ones, on
// fields of the root struct of a basic kind, without running validator.
//
// It is only ever trusted when it says yes: a value it accepts is accepted
// by validator too (TestQuickCheckAgreesWithValidator and FuzzQuickCheck
// hold it to that). A value it refuses is handed to validator, whose answer
// and error are the ones returned, so a refusal never needs to be exact.
//
// Eligible types: the default validator (newValidator), no embedded field,
// and every field that validator walks either has nothing to check
// (typeFree, no tag) or is of kind string, bool, int*, uint*, float*, or is
// a time.Time, with a tag made of:
//
//	omitempty (first only), required,
//	and on strings: len=N, min=N, max=N (runes, as validator counts them),
//	numeric, email.
//
// Anything else (another tag, "|", a parameter that is not plain decimal, a
// Valuer, a nested struct with tags) makes the type ineligible: validator
// runs as before.
type quickCheck struct {
	fields []quickField
}

type quickField struct {
	index     int
	name      string // Go name, as validator's namespace has it
	omitEmpty bool
	rules     []quickRule
}

type quickOp uint8

const (
	qRequired quickOp = iota
	qLen
	qMin
	qMax
	qNumeric
	qEmail
)

type quickRule struct {
	op quickOp
	n  int
}

// maxQuickParam bounds N in len/min/max: larger values are left to validator.
const maxQuickParam = 1 << 20

// compileQuick returns t's quickCheck, or nil when t is not eligible.
func compileQuick(t reflect.Type) *quickCheck {
	if t.Kind() != reflect.Struct || t.ConvertibleTo(timeType) {
		return nil
	}
	q := &quickCheck{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil
		}
		if f.PkgPath != "" {
			continue // validator does not see unexported fields
		}
		tag := f.Tag.Get("validate")
		if tag == "-" {
			continue
		}
		if tag == "" {
			if !typeFree(f.Type, map[reflect.Type]bool{}) {
				return nil
			}
			continue
		}
		qf, ok := compileQuickField(i, f, tag)
		if !ok {
			return nil
		}
		q.fields = append(q.fields, qf)
	}
	return q
}

func compileQuickField(i int, f reflect.StructField, tag string) (quickField, bool) {
	qf := quickField{index: i, name: f.Name}
	ft := f.Type
	if ft.Implements(valuerType) || reflect.PointerTo(ft).Implements(valuerType) {
		return qf, false
	}
	isString := false
	switch ft.Kind() {
	case reflect.String:
		isString = true
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
	case reflect.Struct:
		if ft != timeType {
			return qf, false
		}
	default:
		return qf, false
	}
	if strings.ContainsAny(tag, "|") {
		return qf, false
	}
	for j, part := range strings.Split(tag, ",") {
		name, param, hasParam := strings.Cut(part, "=")
		switch {
		case name == "omitempty" && !hasParam && j == 0:
			qf.omitEmpty = true
		case name == "required" && !hasParam:
			qf.rules = append(qf.rules, quickRule{op: qRequired})
		case isString && (name == "numeric" || name == "email") && !hasParam:
			op := qNumeric
			if name == "email" {
				op = qEmail
			}
			qf.rules = append(qf.rules, quickRule{op: op})
		case isString && (name == "len" || name == "min" || name == "max") && hasParam:
			n, ok := plainDecimal(param)
			if !ok {
				return qf, false
			}
			op := map[string]quickOp{"len": qLen, "min": qMin, "max": qMax}[name]
			qf.rules = append(qf.rules, quickRule{op: op, n: n})
		default:
			return qf, false
		}
	}
	return qf, true
}

// plainDecimal parses "0" or digits without a leading zero (validator reads
// its parameters in base 0, where "010" is octal), up to maxQuickParam.
func plainDecimal(s string) (int, bool) {
	if s == "" || len(s) > 7 || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n <= maxQuickParam
}

// forProjection returns the part of q that concerns the fields a recipient
// received (Open validates only those; see Codec.check), or q itself.
func (q *quickCheck) forProjection(proj *schema.Projection) *quickCheck {
	root := buildVnode(proj, map[*schema.Projection]*vnode{})
	out := &quickCheck{}
	for _, f := range q.fields {
		if e := root.fields[f.name]; e != nil && e.shared {
			out.fields = append(out.fields, f)
		}
	}
	return out
}

// ok reports whether every check passes on v (the root struct). True means
// validator accepts v; false means "ask validator".
func (q *quickCheck) ok(v reflect.Value) bool {
	for i := range q.fields {
		f := &q.fields[i]
		fv := v.Field(f.index)
		if f.omitEmpty && fv.IsZero() {
			continue
		}
		for _, r := range f.rules {
			switch r.op {
			case qRequired:
				if fv.IsZero() {
					return false
				}
			case qLen:
				if utf8.RuneCountInString(fv.String()) != r.n {
					return false
				}
			case qMin:
				if utf8.RuneCountInString(fv.String()) < r.n {
					return false
				}
			case qMax:
				if utf8.RuneCountInString(fv.String()) > r.n {
					return false
				}
			case qNumeric:
				if !plainNumeric(fv.String()) {
					return false
				}
			case qEmail:
				if !plainEmail(fv.String()) {
					return false
				}
			}
		}
	}
	return true
}

// plainNumeric is validator's numeric check on a string, the regular
// expression ^[-+]?[0-9]+(?:\.[0-9]+)?$ written out.
func plainNumeric(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
