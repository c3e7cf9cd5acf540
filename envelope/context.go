package envelope

import (
	"encoding/binary"
	"unicode/utf8"
)

// Domain-separation labels: each starts an LP-encoded byte string, so no
// associated data or wrap context of one kind can be read as another.
const (
	labelWrap     = "xsvc/v1/wrap"
	labelField    = "xsvc/v1/field"
	labelDet      = "xsvc/v1/det"
	labelEnvelope = "xsvc/v1/envelope"
)

// appendLP appends LP(s): the 4-byte big-endian length of s, then s.
func appendLP[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// wrapContext is W = LP("xsvc/v1/wrap") || LP(snd) || LP(rcp): the data key is
// bound to the sender and recipient names, so a wrapped key cannot be lifted
// into an envelope between other parties.
func wrapContext(snd, rcp string) []byte {
	b := make([]byte, 0, 12+len(labelWrap)+len(snd)+len(rcp))
	b = appendLP(b, labelWrap)
	b = appendLP(b, snd)
	return appendLP(b, rcp)
}

// fieldADPrefix is the part of a random field's associated data that is the
// same for every field of a message; the field's path (LP) completes it.
func fieldADPrefix(h *Header) []byte {
	b := make([]byte, 0, 20+len(labelField)+len(h.ID)+len(h.Sender)+len(h.Recipient)+len(h.Type))
	b = appendLP(b, labelField)
	b = appendLP(b, h.ID)
	b = appendLP(b, h.Sender)
	b = appendLP(b, h.Recipient)
	return appendLP(b, h.Type)
}

// detAD is LP("xsvc/v1/det") || LP(typ) || LP(schemaPath).
func detAD(dst []byte, typ string, schemaPath []byte) []byte {
	dst = appendLP(dst, labelDet)
	dst = appendLP(dst, typ)
	return appendLP(dst, schemaPath)
}

// appendEnvelopeAD returns LP("xsvc/v1/envelope") || LP(hdr) || LP(data)
// together with the sub-slices of it that hold hdr and data, so one copy of
// the input serves both as the authenticated bytes and as the associated
// data. extra bytes of capacity are left after it, for the caller's use. It
// is built in dst[:0] when dst has the capacity, in a new allocation
// otherwise.
func appendEnvelopeAD(dst, hdr, data []byte, extra int) (ad, hdrCopy, dataCopy []byte) {
	if n := 12 + len(labelEnvelope) + len(hdr) + len(data) + extra; cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	ad = appendLP(dst[:0], labelEnvelope)
	ad = appendLP(ad, hdr)
	h := len(ad) - len(hdr)
	ad = appendLP(ad, data)
	d := len(ad) - len(data)
	return ad, ad[h : h+len(hdr) : h+len(hdr)], ad[d:len(ad):len(ad)]
}

// fieldADPrefixLen is len(fieldADPrefix(h)).
func fieldADPrefixLen(h *Header) int {
	return 20 + len(labelField) + len(h.ID) + len(h.Sender) + len(h.Recipient) + len(h.Type)
}

// appendCacheKey appends the name of an unwrapped data key in the cache:
// everything that went into unwrapping it, LP(alg) || LP(kid) || LP(snd) ||
// LP(rcp) || LP(wk). The cache compares names byte for byte (a map keyed by
// the string), so two names never share an entry; wk is no longer than
// what the identity's Unwrap accepted (85 bytes for HPKE), since only a
// successful unwrap is cached.
func appendCacheKey(b []byte, k *KeyInfo, snd, rcp string) []byte {
	b = appendLP(b, k.Alg)
	b = appendLP(b, k.KeyID)
	b = appendLP(b, snd)
	b = appendLP(b, rcp)
	return appendLP(b, k.Wrapped)
}

// validPointer reports whether p is a non-empty RFC 6901 JSON Pointer: it
// starts with '/', and every '~' is followed by '0' or '1'. The empty pointer
// (the whole document) is refused: a field is never the data object itself.
// It must be valid UTF-8, like every JSON string.
func validPointer(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	ascii := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '~':
			if i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1') {
				return false
			}
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(p)
}
