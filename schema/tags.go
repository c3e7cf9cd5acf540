package schema

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/internal/names"
)

// The tag keys this package owns.
const (
	tagShare     = "share"
	tagSensitive = "sensitive"
	tagJSON      = "json"
	tagValidate  = "validate"
)

// Wildcard is the share-tag value meaning "any authenticated service".
const Wildcard = "*"

// tagPair is one key:"value" pair of a struct tag.
type tagPair struct {
	key, value string
}

var errMalformedTag = errors.New("malformed struct tag")

// parseStructTag splits a whole struct tag into its pairs with the
// conventions of [reflect.StructTag], but strictly: where Lookup silently
// stops at the first malformed pair (and so would ignore a `sensitive` key
// written after it), this refuses the whole tag, and it unquotes every value,
// not only the one looked up.
func parseStructTag(tag string) ([]tagPair, error) {
	var pairs []tagPair
	for tag != "" {
		i := 0
		for i < len(tag) && tag[i] == ' ' {
			i++
		}
		tag = tag[i:]
		if tag == "" {
			break
		}
		i = 0
		for i < len(tag) && tag[i] > ' ' && tag[i] != ':' && tag[i] != '"' && tag[i] != 0x7f {
			i++
		}
		if i == 0 || i+1 >= len(tag) || tag[i] != ':' || tag[i+1] != '"' {
			return nil, errMalformedTag
		}
		key := tag[:i]
		tag = tag[i+1:]
		i = 1
		for i < len(tag) && tag[i] != '"' {
			if tag[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(tag) {
			return nil, errMalformedTag
		}
		value, err := strconv.Unquote(tag[:i+1])
		if err != nil {
			return nil, errMalformedTag
		}
		tag = tag[i+1:]
		pairs = append(pairs, tagPair{key, value})
	}
	return pairs, nil
}

// nearMiss reports whether key looks like a misspelling of one of the keys
// this package owns ("share", "sensitive") without being one: equal ignoring
// case, within two edits (runes inserted, deleted or replaced, so look-alike
// letters from other scripts count too), or containing "share" or "sensitiv"
// (such as "shared", "sensitivity"). A near miss is an error because Go
// ignores unknown tag keys: `sensitve:"random"` would otherwise send the field
// in the clear.
func nearMiss(key string) bool {
	if key == tagShare || key == tagSensitive {
		return false
	}
	lower := strings.ToLower(key)
	if strings.Contains(lower, tagShare) || strings.Contains(lower, "sensitiv") {
		return true
	}
	return withinTwoEdits(lower, tagShare) || withinTwoEdits(lower, tagSensitive)
}

// withinTwoEdits reports whether the Levenshtein distance between a and b,
// counted in runes, is at most 2.
func withinTwoEdits(a, b string) bool {
	const maxDist = 2
	ra, rb := []rune(a), []rune(b)
	if len(ra) > len(rb)+maxDist || len(rb) > len(ra)+maxDist {
		return false
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > maxDist {
			return false
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)] <= maxDist
}

// parseShare parses the value of a share tag: either "*" or a comma-separated
// list of distinct service names. It returns the reason for a refusal.
func parseShare(v string) (services []string, all bool, reason string) {
	if v == "" {
		return nil, false, "empty share list (remove the tag to keep the field, or name the services)"
	}
	if v == Wildcard {
		return nil, true, ""
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		if p == Wildcard {
			return nil, false, `"*" cannot be combined with service names`
		}
		if !names.Valid(p) {
			return nil, false, "invalid service name " + quoteForError(p) +
				" (lowercase letters, digits and single hyphens, starting with a letter; no spaces)"
		}
		for _, q := range parts[:i] {
			if q == p {
				return nil, false, "service " + quoteForError(p) + " listed twice"
			}
		}
	}
	return parts, false, ""
}

// parseSensitive parses the value of a sensitive tag.
func parseSensitive(v string) (Mode, string) {
	switch v {
	case "random":
		return Random, ""
	case "deterministic":
		return Deterministic, ""
	case "":
		return 0, `empty sensitive tag (use "random" or "deterministic")`
	}
	return 0, "unknown sensitive option " + quoteForError(v) + ` (use "random" or "deterministic")`
}

// jsonTag is the parsed json tag of a field, as encoding/json reads it.
type jsonTag struct {
	present   bool
	skip      bool // json:"-"
	name      string
	omitEmpty bool
	omitZero  bool
	quoted    bool   // the ",string" option
	badName   bool   // a name encoding/json does not accept
	rawName   string // the name as written, when badName
}

func parseJSONTag(v string, present bool) jsonTag {
	jt := jsonTag{present: present}
	if !present {
		return jt
	}
	if v == "-" {
		jt.skip = true
		return jt
	}
	name, opts, _ := strings.Cut(v, ",")
	if validJSONName(name) {
		jt.name = name
	} else if name != "" {
		jt.badName, jt.rawName = true, name
	}
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		switch o {
		case "omitempty":
			jt.omitEmpty = true
		case "omitzero":
			jt.omitZero = true
		case "string":
			jt.quoted = true
		}
	}
	return jt
}

// jsonNameRule says why a json name was refused.
const jsonNameRule = "not a name encoding/json accepts (letters, digits and !#$%&()*+-./:;<=>?@[]^_{|}~ and space only)"

// validJSONName is encoding/json's isValidTag (and valid UTF-8). Go 1.26's
// encoding/json replaces a name it does not accept by the Go field name; Go
// 1.27's reads part of it. A plan refuses such a name (a [TagError]) rather
// than guess which member the other side will see.
func validJSONName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return utf8.ValidString(s)
}
