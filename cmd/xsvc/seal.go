package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/schema"
)

func init() {
	register("seal", "seal a JSON document for a recipient, as its schema file says", sealCmd)
	register("open", "open an envelope addressed to this service into a JSON document", openCmd)
}

const schemaFileHelp = `
The schema file describes the message type with the rules of the struct tags,
in JSON (package schema, "Schema files"):

  {"type": "accounts.Account",
   "fields": [
     {"name": "id",      "type": "string", "share": ["financial-service"]},
     {"name": "ssn",     "type": "string", "share": ["financial-service"],
      "sensitive": "deterministic", "validate": "required,len=9,numeric"},
     {"name": "balance", "type": "number", "share": ["*"]},
     {"name": "notes",   "type": "string"}]}

Types: string, number, integer, boolean, time, bytes, raw, object ("fields"),
array ("items"), map ("values"), or a name from "types". Members: share,
sensitive (random | deterministic), validate, omitempty, omitzero, nullable,
description. Values are sealed and opened by the same code as Go types.`

// loadSchema reads and parses a schema file.
func loadSchema(e *env, path string) (*schema.File, error) {
	data, err := readInput(e, path, "schema file")
	if err != nil {
		return nil, err
	}
	f, err := schema.ParseFile(data)
	if err != nil {
		return nil, fail(path+": "+strings.TrimPrefix(err.Error(), "schema: "), "fix the schema file")
	}
	return f, nil
}

// decodeDocument decodes a JSON document strictly into a new value of the
// schema's type: a member the schema does not describe is an error rather
// than silently dropped.
func decodeDocument(f *schema.File, data []byte, name string) (reflect.Value, error) {
	v := reflect.New(f.Type)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return v, fail(fmt.Sprintf("document %s: member %q is a JSON %s, the schema says %s", name, te.Field, te.Value, schemaTypeName(te.Type)),
				"fix the document or the schema file")
		case errors.As(err, &se):
			return v, fail(fmt.Sprintf("document %s is not valid JSON (offset %d)", name, se.Offset), "check the document")
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return v, fail(fmt.Sprintf("document %s is not valid JSON (it ends early)", name), "check the document")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return v, fail(fmt.Sprintf("document %s has the member %s, which schema %s does not describe", name,
				strings.TrimPrefix(err.Error(), "json: unknown field "), f.Name),
				"add it to the schema file (without share it is never sent) or remove it")
		}
		return v, fail(fmt.Sprintf("document %s: %v", name, err), "check the document")
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, fail("document "+name+" has data after its JSON object", "give one document")
	}
	return v, nil
}

func schemaTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Float64:
		return "a number"
	case reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	case reflect.Map:
		return "an object (map)"
	}
	return t.String()
}

func nameOf(path string) string {
	if path == "" || path == "-" {
		return "(standard input)"
	}
	return path
}

func sealCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "seal", "--schema FILE --from SERVICE --to SERVICE --recipient-keyset FILE [flags]", `
Reads a JSON document (--in, or standard input), checks it against the schema
file (unknown members are refused), validates it, keeps only the fields shared
with --to, encrypts the sensitive ones, and writes the envelope (--out, or
standard output), followed by a newline.

--recipient-keyset is the recipient's public HPKE keyset (xsvc key public), or
its AEAD keyset for an AEAD recipient. --deterministic is the recipient's AES-
SIV keyset, needed when the schema has sensitive "deterministic" fields shared
with it.
`+schemaFileHelp)
	var kf keyFlags
	kf.register(fs)
	schemaPath := fs.String("schema", "", "the schema file (required)")
	from := fs.String("from", "", "this service: the envelope's sender (default $SERVICE_NAME)")
	to := fs.String("to", "", "the recipient service (required)")
	recipientKeys := fs.String("recipient-keyset", "", "the recipient's public HPKE keyset or AEAD keyset (required)")
	detKeys := fs.String("deterministic", "", "the recipient's deterministic (AES-SIV) keyset")
	in := fs.String("in", "", "the JSON document (default: standard input)")
	out := fs.String("out", "", "the envelope file to write (default: standard output)")
	force := fs.Bool("force", false, "replace an existing --out file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" {
		*from, _ = e.lookup("SERVICE_NAME")
	}
	if *from == "" {
		return usage("--from is required", "or set SERVICE_NAME")
	}
	if err := required(fs, "schema", "to", "recipient-keyset"); err != nil {
		return err
	}
	if *out != "" && *out != "-" && !*force {
		if err := noClobber(*out, "envelope file"); err != nil {
			return err
		}
	}
	f, err := loadSchema(e, *schemaPath)
	if err != nil {
		return err
	}
	rk, err := kf.readKeyFile(e, *recipientKeys, "recipient keyset", false)
	if err != nil {
		return err
	}
	var rcp fieldcrypt.Recipient
	switch rk.kind {
	case kindHPKEPublic, kindHPKE:
		pub := rk.handle
		if !rk.public {
			if pub, err = rk.handle.Public(); err != nil {
				return fail(err.Error(), "")
			}
		}
		rcp.To, err = envelope.NewHPKERecipient(pub)
	case kindAEAD:
		rcp.To, err = envelope.NewAEADKeysetRecipient(rk.handle)
	default:
		return fail(fmt.Sprintf("%s is a %s key file, not a recipient keyset", *recipientKeys, rk.kind),
			"give the recipient's public HPKE keyset (xsvc key public) or its AEAD keyset")
	}
	if err != nil {
		return fail(*recipientKeys+": "+err.Error(), "HPKE keysets must be X25519/HKDF-SHA256/AES-256-GCM with the TINK prefix (xsvc key generate --type hpke)")
	}
	if *detKeys != "" {
		dk, err := kf.readKeyFile(e, *detKeys, "deterministic keyset", false)
		if err != nil {
			return err
		}
		if dk.kind != kindDet {
			return fail(fmt.Sprintf("%s is a %s keyset, not a deterministic one", *detKeys, dk.kind), "xsvc key generate --type deterministic")
		}
		rcp.Deterministic = dk.handle
	}
	codec, err := fieldcrypt.New(fieldcrypt.Config{Self: *from, Recipients: map[string]fieldcrypt.Recipient{*to: rcp}})
	if err != nil {
		return usage(err.Error(), "check --from and --to: service names are lowercase letters, digits and single hyphens")
	}
	data, err := readInput(e, *in, "document")
	if err != nil {
		return err
	}
	v, err := decodeDocument(f, data, nameOf(*in))
	if err != nil {
		return err
	}
	sealed, err := codec.Seal(v.Interface(), *to)
	if err != nil {
		var ve *fieldcrypt.ValidationError
		if errors.As(err, &ve) {
			return fail("document fails validation: "+violations(ve), "fix the document: the schema's validate rules apply before sealing")
		}
		if strings.Contains(err.Error(), "deterministic") {
			return fail(oneLine(err.Error()), "give the recipient's deterministic keyset with --deterministic")
		}
		return fail(oneLine(err.Error()), "check the keys and the document")
	}
	return writeOutput(e, *out, append(sealed, '\n'), *force, "envelope file")
}

func violations(ve *fieldcrypt.ValidationError) string {
	var parts []string
	for _, v := range ve.Violations {
		parts = append(parts, v.Path+" ("+v.Tag+")")
	}
	return strings.Join(parts, ", ")
}

// noClobber refuses early an output file that exists, before any work.
func noClobber(path, what string) error {
	if _, err := lstat(path); err == nil {
		return existsError(path, what)
	}
	return nil
}

func openCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "open", "--schema FILE --self SERVICE --keyset FILE [flags]", `
Opens an envelope addressed to this service (--in, or standard input): checks
its integrity, its type against the schema file, decrypts its sensitive fields,
validates them, and writes the fields this service received as a JSON document
(--out, or standard output). With --from the envelope's sender must be that
service (compare it with the caller your transport authenticated: with an HPKE
keyset anyone holding your public keyset can seal).

--keyset is this service's private HPKE keyset (or its AEAD keyset);
--deterministic its AES-SIV keyset.
`+schemaFileHelp)
	var kf keyFlags
	kf.register(fs)
	schemaPath := fs.String("schema", "", "the schema file (required)")
	self := fs.String("self", "", "this service: the envelope's recipient (default $SERVICE_NAME)")
	keys := fs.String("keyset", "", "this service's private HPKE keyset or AEAD keyset (required)")
	detKeys := fs.String("deterministic", "", "this service's deterministic (AES-SIV) keyset")
	from := fs.String("from", "", "require this sender")
	in := fs.String("in", "", "the envelope (default: standard input)")
	out := fs.String("out", "", "the document file to write (default: standard output)")
	force := fs.Bool("force", false, "replace an existing --out file")
	showHeader := fs.Bool("header", false, "print the verified header (id, sender, type, time, key) on standard error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *self == "" {
		*self, _ = e.lookup("SERVICE_NAME")
	}
	if *self == "" {
		return usage("--self is required", "or set SERVICE_NAME")
	}
	if err := required(fs, "schema", "keyset"); err != nil {
		return err
	}
	if *out != "" && *out != "-" && !*force {
		if err := noClobber(*out, "document file"); err != nil {
			return err
		}
	}
	f, err := loadSchema(e, *schemaPath)
	if err != nil {
		return err
	}
	id, det, err := identity(e, &kf, *keys, *detKeys)
	if err != nil {
		return err
	}
	codec, err := fieldcrypt.New(fieldcrypt.Config{Self: *self, Identity: id.identity, Deterministic: det})
	if err != nil {
		return usage(err.Error(), "check --self: a service name")
	}
	data, err := readInput(e, *in, "envelope")
	if err != nil {
		return err
	}
	v := reflect.New(f.Type)
	var hdr envelope.Header
	if *from != "" {
		hdr, err = codec.OpenFrom(*from, bytes.TrimSpace(data), v.Interface())
	} else {
		hdr, err = codec.Open(bytes.TrimSpace(data), v.Interface())
	}
	if err != nil {
		return openError(err, *keys, f)
	}
	if *showHeader {
		fmt.Fprintf(e.stderr, "envelope %s from %s to %s, type %s, issued %s, key %s %s\n", hdr.ID, hdr.Sender, hdr.Recipient,
			hdr.Type, hdr.IssuedAt.Format("2006-01-02T15:04:05.000Z07:00"), hdr.Key.Alg, hdr.Key.KeyID)
	}
	proj, err := f.Plan.Project(*self)
	if err != nil {
		return usage(err.Error(), "check --self")
	}
	var buf bytes.Buffer
	if err := writeProjected(&buf, v.Elem(), proj); err != nil {
		return fail("writing the document: "+err.Error(), "")
	}
	buf.WriteByte('\n')
	defer clear(buf.Bytes())
	return writeOutput(e, *out, buf.Bytes(), *force, "document file")
}

func openError(err error, keys string, f *schema.File) error {
	var kre *envelope.KeyRetiredError
	var me *fieldcrypt.MismatchError
	var ve *fieldcrypt.ValidationError
	switch {
	case errors.As(err, &kre):
		return fail(fmt.Sprintf("the envelope is under key %s, which is retired in %s", kre.KeyID, keys),
			"re-enable the key to read it, or run xsvc rewrap over stored envelopes before retiring keys")
	case errors.As(err, &me) && me.Member == "typ":
		return fail(fmt.Sprintf("the envelope is of type %q, the schema file describes %q", me.Got, f.Name), "use the schema file of that type")
	case errors.As(err, &me):
		return fail(fmt.Sprintf("the envelope was sealed by %q, not %q", me.Got, me.Want), "refuse it: it does not come from the expected sender")
	case errors.As(err, &ve):
		return fail("the envelope opens but its content fails validation: "+violations(ve), "the sender's data breaks the schema's validate rules")
	case errors.Is(err, envelope.ErrCannotOpen):
		return fail("the envelope does not open",
			"it was altered, is addressed to another service, is not an envelope, or was sealed for other keys than "+keys)
	}
	return fail(oneLine(err.Error()), "check the keys and the envelope")
}

// writeProjected writes v as JSON with the members of proj only: the fields
// this service received, as encoding/json would write them.
func writeProjected(buf *bytes.Buffer, v reflect.Value, proj *schema.Projection) error {
	n := proj.Node
	switch n.Kind {
	case schema.Struct:
		buf.WriteByte('{')
		first := true
		for _, pf := range proj.Fields {
			fv, err := v.FieldByIndexErr(pf.Index)
			if err != nil {
				continue // through a nil embedded pointer: left out, as encoding/json does
			}
			if pf.Omitted(fv) {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.WriteString(pf.JSONKey)
			if err := writeProjected(buf, fv, pf.Proj); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case schema.Pointer:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return writeProjected(buf, v.Elem(), proj.Elem)
	case schema.Slice, schema.Array:
		if n.Kind == schema.Slice && v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		buf.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeProjected(buf, v.Index(i), proj.Elem); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case schema.Map:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, err := json.Marshal(k.String())
			if err != nil {
				return err
			}
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeProjected(buf, v.MapIndex(k), proj.Elem); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}
