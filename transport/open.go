package transport

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
)

// EnvelopeMediaType is the Content-Type of a body sealed with
// [fieldcrypt.Codec], in requests and responses: the bytes are one envelope
// (SPEC.md part 1). Plain JSON stays application/json.
const EnvelopeMediaType = "application/vnd.xsvc.envelope+json"

// Codes of the refusals of [OpenRequest], in addition to those of the
// verifier (a request without a verified caller is answered
// [CodeUnsignedRequest], an unreadable or oversized body [CodeBodyUnreadable]
// or [CodeBodyTooLarge]).
const (
	CodeUnsupportedMediaType Code = "unsupported_media_type" // 415: the body is not an envelope
	CodeEnvelopeRefused      Code = "envelope_refused"       // 400: does not open, wrong type, fails validation
	CodeSenderMismatch       Code = "sender_mismatch"        // 403: sealed by another service than the verified caller
)

// Sentinel causes of an [*OpenError].
var (
	// ErrNoVerifiedCaller: the request did not pass through a verifier, or was
	// admitted unsigned in non-strict mode, so no sender can be checked.
	ErrNoVerifiedCaller = errors.New("transport: no verified caller for this request")
	// ErrNotSealed: the request's Content-Type is not [EnvelopeMediaType].
	ErrNotSealed = errors.New("transport: request body is not a sealed envelope")
)

// OpenError is a refusal of [OpenRequest]. It unwraps to the cause:
// [ErrNoVerifiedCaller], [ErrNotSealed], or an error matching
// envelope.ErrCannotOpen (a *fieldcrypt.MismatchError for a wrong sender).
type OpenError struct {
	Code   Code // the problem code to answer with
	Status int  // the HTTP status to answer with
	Err    error
}

func (e *OpenError) Error() string {
	return "transport: request body refused (" + string(e.Code) + "): " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpenError) Unwrap() error { return e.Err }

// WriteProblem answers the refusal as an application/problem+json document
// with the code and the request id; it says nothing of which field or check
// of the envelope failed.
func (e *OpenError) WriteProblem(w http.ResponseWriter, r *http.Request) {
	p := Problem{
		Type:      ProblemTypeBase + string(e.Code),
		Title:     openTitles[e.Code],
		Status:    e.Status,
		Code:      e.Code,
		RequestID: r.Header.Get(hdrRequestID),
	}
	if p.Title == "" {
		p.Title = http.StatusText(e.Status)
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", string(SchemeV1))
	}
	b, _ := json.Marshal(&p)
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

var openTitles = map[Code]string{
	CodeUnsupportedMediaType: "Body is not a sealed envelope",
	CodeEnvelopeRefused:      "Envelope refused",
	CodeSenderMismatch:       "Envelope sender is not the caller",
	CodeUnsignedRequest:      "Request not signed",
	CodeBodyUnreadable:       "Request body unreadable",
	CodeBodyTooLarge:         "Request body too large",
}

// OpenRequest opens the sealed body of a request admitted by the verifier's
// middleware into dst (a non-nil pointer to a struct of the envelope's type),
// with codec (this service's [fieldcrypt.Codec]), and returns the envelope's
// verified header.
//
// It refuses, with an [*OpenError] to answer with [OpenError.WriteProblem]:
// a request without a verified caller in its context (401); a Content-Type
// other than [EnvelopeMediaType] (415); an envelope that does not open, is
// of another type or fails validation (400); and an envelope whose sender is
// not the verified caller (403). The last check is what makes a public-key
// envelope prove its sender: anyone holding this service's public keyset
// can seal one naming any sender, but only the caller holds its signing key.
// dst is unchanged on any error. A configuration or programming error (dst
// not a pointer to a struct, a bad tag, a codec without identity) is
// returned as it is, not as an *OpenError: answer it with a 500.
//
// The body is read from r.Body, bounded by the verifier's MaxBodyBytes and
// again by [envelope.DefaultMaxSize].
func OpenRequest(r *http.Request, codec *fieldcrypt.Codec, dst any) (envelope.Header, error) {
	caller, ok := CallerFrom(r.Context())
	if !ok {
		return envelope.Header{}, &OpenError{Code: CodeUnsignedRequest, Status: http.StatusUnauthorized, Err: ErrNoVerifiedCaller}
	}
	mt, err := r.Header.Get(hdrContentType), error(nil)
	if mt != EnvelopeMediaType { // the exact value needs no parsing
		mt, _, err = mime.ParseMediaType(mt)
	}
	if err != nil || mt != EnvelopeMediaType {
		return envelope.Header{}, &OpenError{Code: CodeUnsupportedMediaType, Status: http.StatusUnsupportedMediaType, Err: ErrNotSealed}
	}
	if r.Body == nil {
		return envelope.Header{}, &OpenError{Code: CodeEnvelopeRefused, Status: http.StatusBadRequest, Err: envelope.ErrCannotOpen}
	}
	bp := bodyPool.Get().(*[]byte)
	body, err := readAll(*bp, r.Body, r.ContentLength, envelope.DefaultMaxSize+1)
	defer func() {
		// The codec keeps nothing of the body (Open copies what it
		// returns), so its buffer serves the next request.
		if cap(body) <= maxPooledBody {
			*bp = body[:0]
			bodyPool.Put(bp)
		}
	}()
	if err != nil {
		return envelope.Header{}, &OpenError{Code: CodeBodyUnreadable, Status: http.StatusBadRequest, Err: err}
	}
	if len(body) > envelope.DefaultMaxSize {
		return envelope.Header{}, &OpenError{Code: CodeBodyTooLarge, Status: http.StatusRequestEntityTooLarge,
			Err: errors.New("transport: envelope larger than " + strconv.Itoa(envelope.DefaultMaxSize) + " bytes")}
	}
	h, err := codec.OpenFrom(caller.Service, body, dst)
	if err != nil {
		var me *fieldcrypt.MismatchError
		switch {
		case errors.As(err, &me) && me.Member == "snd":
			return envelope.Header{}, &OpenError{Code: CodeSenderMismatch, Status: http.StatusForbidden, Err: err}
		case errors.Is(err, envelope.ErrCannotOpen):
			return envelope.Header{}, &OpenError{Code: CodeEnvelopeRefused, Status: http.StatusBadRequest, Err: err}
		}
		return envelope.Header{}, err
	}
	return h, nil
}

// bodyPool recycles OpenRequest's body buffers up to maxPooledBody bytes.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 64 << 10

// readAll reads r to its end or to limit bytes, into buf[:0], growing it at
// most once when size (a Content-Length; 0 or negative: unknown) is right.
func readAll(buf []byte, r io.Reader, size, limit int64) ([]byte, error) {
	want := int64(512)
	if size > 0 {
		want = min(size, limit) + 1 // the byte after: to see EOF without growing
	}
	if int64(cap(buf)) < want {
		buf = make([]byte, 0, want)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF || int64(len(buf)) >= limit {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// WriteSealed seals v for the caller the verifier authenticated on r and
// writes it with status and Content-Type [EnvelopeMediaType]: the response
// side of [OpenRequest]. Nothing is written when it fails (no verified
// caller: [ErrNoVerifiedCaller]; sealing errors from codec): answer a 500.
func WriteSealed(w http.ResponseWriter, r *http.Request, codec *fieldcrypt.Codec, status int, v any) error {
	caller, ok := CallerFrom(r.Context())
	if !ok {
		return ErrNoVerifiedCaller
	}
	b, err := codec.Seal(v, caller.Service)
	if err != nil {
		return err
	}
	h := w.Header()
	// Canonical keys assigned directly (as Set would), the three values in
	// one allocation.
	hv := [3]string{EnvelopeMediaType, "no-store", strconv.Itoa(len(b))}
	h["Content-Type"], h["Cache-Control"], h["Content-Length"] = hv[0:1:1], hv[1:2:2], hv[2:3:3]
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}
