package transport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// MaxKeyFileSize bounds what [LoadKeyFile] reads.
const MaxKeyFileSize = 1 << 20

// keyFile is the JSON key file (see SPEC.md part 2, "Key file"):
//
//	{"version": 1, "keys": [
//	  {"caller": "frontend", "target": "financial-api", "id": "2026-03",
//	   "secret": "<UTF-8 string, used as bytes>", "retired": false},
//	  {"caller": "analytics-service", "id": "a1", "secret_base64": "<std base64>"}
//	]}
type keyFile struct {
	Version *int          `json:"version"`
	Keys    []keyFileItem `json:"keys"`
}

type keyFileItem struct {
	Caller       string  `json:"caller"`
	Target       string  `json:"target"`
	ID           string  `json:"id"`
	Secret       *string `json:"secret"`
	SecretBase64 *string `json:"secret_base64"`
	Retired      bool    `json:"retired"`
}

// LoadKeyFile reads a JSON key file. On Unix it refuses a file that group or
// others may read or write (mode & 0o077 != 0) with [ErrKeyFileInsecure],
// before reading it.
func LoadKeyFile(path string) ([]KeyEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("transport: key file %s has mode %04o, want 0600 or stricter: %w",
			path, st.Mode().Perm(), ErrKeyFileInsecure)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("transport: key file %s larger than %d bytes: %w", path, MaxKeyFileSize, ErrInvalidConfig)
	}
	return ParseKeyFile(data)
}

// ParseKeyFile parses the JSON key file format. Member names are exact and
// case-sensitive ("Secret" is not "secret"), and a member given twice in
// one object is refused, where encoding/json alone would match names
// without regard to case and let the last duplicate win: two readers of one
// file must never see two different keys. Unknown members, a missing or
// unsupported version, an entry with both or neither of secret and
// secret_base64, a duplicate (caller, target, id), a key shorter than 32
// bytes and anything after the object are refused. Errors name the entry by
// index, caller and id, never by secret.
func ParseKeyFile(data []byte) ([]KeyEntry, error) {
	if err := checkMembers(json.NewDecoder(bytes.NewReader(data)), keyFileShape, ""); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var kf keyFile
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("transport: key file: malformed JSON: %w", ErrInvalidConfig)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("transport: key file: data after the object: %w", ErrInvalidConfig)
	}
	if kf.Version == nil || *kf.Version != 1 {
		return nil, fmt.Errorf("transport: key file: version must be 1: %w", ErrInvalidConfig)
	}
	type id struct{ caller, target, id string }
	seen := make(map[id]bool)
	out := make([]KeyEntry, 0, len(kf.Keys))
	for i, it := range kf.Keys {
		var secret []byte
		switch {
		case it.Secret != nil && it.SecretBase64 == nil:
			secret = []byte(*it.Secret)
		case it.Secret == nil && it.SecretBase64 != nil:
			b, err := base64.StdEncoding.Strict().DecodeString(*it.SecretBase64)
			if err != nil {
				return nil, fmt.Errorf("transport: key file: keys[%d] (caller %q): secret_base64 is not standard base64: %w",
					i, it.Caller, ErrInvalidConfig)
			}
			secret = b
		default:
			return nil, fmt.Errorf("transport: key file: keys[%d] (caller %q): exactly one of secret and secret_base64: %w",
				i, it.Caller, ErrInvalidConfig)
		}
		k, err := NewKey(it.ID, secret)
		if err != nil {
			return nil, fmt.Errorf("transport: key file: keys[%d] (caller %q): %w", i, it.Caller, err)
		}
		e := KeyEntry{Caller: it.Caller, Target: it.Target, Key: k, Retired: it.Retired}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("transport: key file: keys[%d]: %w", i, err)
		}
		if seen[id{it.Caller, it.Target, it.ID}] {
			return nil, fmt.Errorf("transport: key file: keys[%d] (caller %q, target %q): same id as an earlier entry: %w",
				i, it.Caller, it.Target, ErrInvalidConfig)
		}
		seen[id{it.Caller, it.Target, it.ID}] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("transport: key file: no keys: %w", ErrInvalidConfig)
	}
	return out, nil
}

// jsonShape lists the member names an object may have, each with the shape
// of its value (nil: any value, only checked for duplicate members), and
// the shape of an array's elements.
type jsonShape struct {
	members map[string]*jsonShape
	elem    *jsonShape
}

var keyFileShape = &jsonShape{members: map[string]*jsonShape{
	"version": nil,
	"keys": {elem: &jsonShape{members: map[string]*jsonShape{
		"caller": nil, "target": nil, "id": nil, "secret": nil, "secret_base64": nil, "retired": nil,
	}}},
}}

// checkMembers walks one JSON value from dec and refuses, in any object, a
// member name given twice and, where shape lists names, a name that is not
// exactly one of them. Types are left to the decoder that follows. Errors
// say where (keys[2]) and never repeat a value, nor an unknown name (it
// might be a misplaced secret) unless it differs from a known one by case
// only.
func checkMembers(dec *json.Decoder, shape *jsonShape, path string) error {
	bad := func(format string, a ...any) error {
		msg := fmt.Sprintf(format, a...)
		if path != "" {
			msg = path + ": " + msg // never a format: it may hold '%'
		}
		return fmt.Errorf("transport: key file: %s: %w", msg, ErrInvalidConfig)
	}
	tok, err := dec.Token()
	if err != nil {
		return bad("malformed JSON")
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	switch d {
	case '{':
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return bad("malformed JSON")
			}
			name, _ := tok.(string)
			var sub *jsonShape
			if shape != nil && shape.members != nil {
				s, known := shape.members[name]
				if !known {
					for k := range shape.members {
						if strings.EqualFold(k, name) {
							return bad("member %q should be %q (names are case-sensitive)", name, k)
						}
					}
					return bad("unknown member")
				}
				if seen[name] {
					return bad("member %q given twice", name)
				}
				sub = s
			} else if seen[name] {
				return bad("a member given twice")
			}
			seen[name] = true
			// A name the shape lists is safe to print; any other (inside
			// a value of no known shape) might be a misplaced secret.
			subPath := name
			if sub == nil && (shape == nil || shape.members == nil) {
				subPath = "(member)"
			}
			if path != "" {
				subPath = path + "." + subPath
			}
			if err := checkMembers(dec, sub, subPath); err != nil {
				return err
			}
		}
	case '[':
		var elem *jsonShape
		if shape != nil {
			elem = shape.elem
		}
		for i := 0; dec.More(); i++ {
			if err := checkMembers(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return bad("malformed JSON")
	}
	return nil
}
