// Package sealhook lets package fieldcrypt finish an envelope without the
// well-formedness scan that envelope.Message.Finish makes of data from an
// unknown writer (valid UTF-8, exactly one JSON object).
//
// fieldcrypt's encoder writes only well-formed JSON: every string escaped as
// encoding/json escapes it (invalid UTF-8 replaced), numbers formatted as
// encoding/json formats them, and the output of a type's own MarshalJSON or
// MarshalText taken through encoding/json, which checks and compacts it.
// FuzzSealData and TestClearOutputIsEncodingJSON in fieldcrypt hold it to
// that. Skipping the scan saves a pass over every sealed message; a
// recipient parses every envelope strictly whatever its sender did.
package sealhook

// FinishEncoded is (*envelope.Message).Finish without the scan of data. It
// is set by package envelope when it is initialised, so it is never nil in
// a package that imports envelope; m must be an *envelope.Message.
var FinishEncoded func(m any, data []byte) ([]byte, error)
