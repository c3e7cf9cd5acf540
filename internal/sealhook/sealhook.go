// Package sealhook lets package fieldcrypt finish an envelope without the
// structural scan that envelope.Message.Finish makes of data from an unknown
// writer (exactly one JSON object), and open one into a buffer it lends. The
// data's UTF-8 is still checked.
//
// fieldcrypt's encoder writes only well-formed JSON: every string escaped as
// encoding/json escapes it (invalid UTF-8 replaced), numbers formatted as
// encoding/json formats them, and the output of a type's own MarshalJSON or
// MarshalText taken through encoding/json, which checks and compacts it (but
// lets invalid UTF-8 through, hence the check that stays). It also bounds
// the nesting the scan would have bounded: its own levels by Config.MaxDepth
// (at most 999), and those inside a value that marshals itself by counting
// them (TestSealCountsSelfMarshalledNesting). FuzzSealData and
// TestClearOutputIsEncodingJSON in fieldcrypt hold it to that. Skipping the
// scan saves a pass over every sealed message; a recipient parses every
// envelope strictly whatever its sender did.
package sealhook

// FinishEncoded is (*envelope.Message).Finish without the structural scan. It
// is set by package envelope when it is initialised, so it is never nil in
// a package that imports envelope; m must be an *envelope.Message.
var FinishEncoded func(m any, data []byte) ([]byte, error)

// OpenInto is (*envelope.Opener).Open writing the result to m, an
// *envelope.Opened, with its verified copy of the envelope's header and data
// built in *buf (grown as needed) instead of a new allocation: m, Data
// included, is valid only while the caller keeps *buf unchanged. Package
// fieldcrypt decodes Data at once and keeps nothing of it (its own copies of
// whatever it hands to a type's UnmarshalJSON or UnmarshalText), then
// returns the buffer to its pool. o must be an *envelope.Opener. Set by
// package envelope when it is initialised.
//
// Unlike Open, OpenInto does not walk data before verifying the tag (for an
// envelope in canonical form): the caller must refuse data that is not
// exactly one JSON object. fieldcrypt's decoder walks all of it with the
// grammar of envelope's scanner (the same strings, escapes, numbers,
// literals and whitespace; the envelope's UTF-8 is checked before) and
// refuses more (unknown and duplicate members, nesting beyond its own
// smaller limit); on a refusal it asks DataParseError for the error Open
// would have given. This saves a pass over every message received.
var OpenInto func(o, m any, envelope []byte, buf *[]byte) error

// DataParseError returns the *envelope.ParseError that Open gives envelope
// when data (the Data OpenInto found) is not one JSON object, and nil when it
// is.
var DataParseError func(envelope, data []byte) error
