// Package schema reads the crossservice struct tags of a message type into a
// [Plan]: which fields leave this service, for which recipient, in the clear
// or encrypted. It knows no cryptography; package fieldcrypt walks the plan
// to seal and open values, and the exposure report ([Report]) shows it to
// humans.
//
// # Tags
//
//	type Account struct {
//		ID      string  `json:"id"      share:"financial-service,analytics-service"`
//		Owner   string  `json:"owner"   share:"financial-service" sensitive:"random"`
//		SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
//		Balance float64 `json:"balance" share:"*"`
//		Notes   string  `json:"notes"` // no share tag: never leaves this service
//	}
//
// The tags mean:
//
//   - share:"a,b" lists the services that receive the field; share:"*" means
//     every authenticated service. A field without share is stripped for
//     everyone: default deny. Names follow internal/names (lowercase letters,
//     digits, single hyphens), separated by commas without spaces.
//   - sensitive:"random" or sensitive:"deterministic" encrypts the field for
//     the recipients it is shared with (see [Random] and [Deterministic]; the
//     latter leaks equality by design). On a struct, slice, array, map or
//     pointer field it encrypts the whole (projected) value as one
//     ciphertext; sensitive tags below it then add nothing, as the value is
//     already encrypted, while share tags below it still filter.
//   - json follows encoding/json: member names, "-", omitempty, omitzero.
//     The ",string" option is refused on shared fields rather than silently
//     ignored, and the member name "$enc" ([MarkerMember]) is reserved.
//   - validate is go-playground/validator's tag, recorded in [Field.Validate].
//
// A struct-typed field needs its own share tag to be sent at all; its
// fields are then filtered by their own tags for the same recipient. The
// types of fields that are not shared are never examined.
//
// # Mistakes are errors
//
// Go ignores struct tag keys it does not know, so `sensitve:"random"` would
// silently send a field in the clear. [For] therefore parses every field's
// whole struct tag and returns a [*TagError] (naming the type, the Go field
// and the tag key; [ErrTag] with errors.Is) for: a malformed struct tag; a
// key that is a near miss of share or sensitive (another case, at most two
// edits away, or containing "share" or "sensitiv"); a tag given twice; an
// empty, duplicated or invalid service name, or "*" mixed with names; an
// unknown sensitive option; sensitive without share; share or sensitive on
// an unexported field, on a json:"-" field, on an embedded struct whose
// fields are promoted, or on the fields of a type that marshals itself; a
// shared field whose JSON name encoding/json would drop as ambiguous; and a
// shared field whose type cannot be written: channels, functions, complex
// numbers, unsafe pointers, maps whose keys are not strings, integers or
// TextMarshalers, and interface types (including any): a dynamic value
// could be a struct whose unshared fields no tag could strip. Use a
// concrete type, or json.RawMessage for free-form JSON.
//
// # Plans and projections
//
// A [Plan] holds the message type, its envelope type name and its root
// [Node]. Nodes describe Go types ([Kind]: scalars, [Bytes], [JSON] leaves,
// structs, pointers, slices, arrays, maps) and are shared between plans;
// recursive types point back to themselves. [Plan.Project] gives the
// [Projection] for one recipient: the same graph holding only the fields
// shared with it, each with its [Mode]. Plans and projections are built once,
// cached, immutable and safe for concurrent use.
//
// encoding/json semantics are kept where a Go user would rely on them:
// embedded structs promote their fields with its dominance rules (a deeper
// field shadowed by a shallower one of the same name simply does not apply),
// embedded pointers are followed, unexported fields are ignored, []byte is
// base64, map keys are strings, integers or TextMarshalers, and a type with a
// MarshalJSON or MarshalText method (time.Time, json.RawMessage) is a leaf
// written by encoding/json. Two deliberate differences: pointer-receiver
// marshalling methods are always used (encoding/json skips them on values it
// cannot address, such as map values, and would then write every field of
// the struct, unfiltered), and reading matches member names exactly.
//
// # Type names
//
// The envelope names the message type so that a recipient cannot be handed
// one type's fields as another's. The name is reflect.Type.String() (such as
// "demo.Account") unless the type implements [TypeNamer].
//
// # Schema files
//
// Producers that are not written in Go describe a message type in a JSON
// schema file with the same rules as the tags; [ParseFile] builds a struct
// type from it with reflect.StructOf, whose fields carry the equivalent
// tags, and plans it under the file's type name ([ForNamed]), so that
// values of it go through exactly the code that handles Go types:
//
//	{
//	  "type": "accounts.Account",
//	  "fields": [
//	    {"name": "id",      "type": "string", "share": ["financial-service", "analytics-service"]},
//	    {"name": "owner",   "type": "string", "share": ["financial-service"], "sensitive": "random"},
//	    {"name": "ssn",     "type": "string", "share": ["financial-service"], "sensitive": "deterministic",
//	     "validate": "required,len=9,numeric"},
//	    {"name": "balance", "type": "number", "share": ["*"]},
//	    {"name": "owners",  "type": "array",  "share": ["financial-service"], "items": {"type": "Owner"}},
//	    {"name": "notes",   "type": "string"}
//	  ],
//	  "types": {"Owner": {"fields": [{"name": "name", "type": "string", "share": ["*"]}]}}
//	}
//
// A field has a name (its JSON member name) and a type: string, number
// (float64), integer (int64), boolean, time (RFC 3339, time.Time), bytes
// (base64, []byte), raw (any JSON, json.RawMessage), object (with
// "fields"), array (with "items"), map (string keys, with "values"), or
// the name of an object type of "types". share, sensitive and validate are
// the tags; omitempty and omitzero the json options; nullable makes the
// field a pointer (null when absent). "description" is allowed anywhere and
// ignored. Unknown members, a member given twice and every mistake a tag
// can make are a [*FileError] naming the place in the file and the field.
// A type of "types" that refers back to itself is refused: reflect.StructOf
// cannot build recursive types, so recursive messages need Go types.
//
// # Exposure report
//
// [Report] lists, for some types and services, every field path and how each
// service receives it; [Exposure.Markdown] and [Exposure.DOT] render it for
// reviews and documentation.
package schema
