package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Code is the stable, machine-readable reason of a refusal: the "code"
// member of a [Problem]. Clients act on codes, never on titles or details.
type Code string

// The codes a verifier answers with. Unknown caller, unknown key id and
// retired key are all answered signature_invalid (the log tells them apart):
// a distinct answer would let anyone probe which key ids are live.
const (
	CodeHeaderMissing          Code = "header_missing"           // 401
	CodeHeaderMalformed        Code = "header_malformed"         // 400, also a duplicated header
	CodeRequestMalformed       Code = "request_malformed"        // 400: method or request target cannot be canonicalised
	CodeUnsignedRequest        Code = "unsigned_request"         // 401: no X-Signature in strict mode
	CodeSchemeNotAllowed       Code = "scheme_not_allowed"       // 401: legacy form from a v1 caller or v1 form from a legacy caller
	CodeTimestampOutOfWindow   Code = "timestamp_out_of_window"  // 401
	CodeBodyTooLarge           Code = "body_too_large"           // 413
	CodeBodyUnreadable         Code = "body_unreadable"          // 400
	CodeSignatureInvalid       Code = "signature_invalid"        // 401, also unknown caller / key id, retired key
	CodeReplayDetected         Code = "replay_detected"          // 401
	CodeIdentityMismatch       Code = "identity_mismatch"        // 403: mTLS certificate names another service
	CodeServiceNotAuthorized   Code = "service_not_authorized"   // 403
	CodeRateLimited            Code = "rate_limited"             // 429 + Retry-After
	CodeInsecureTransport      Code = "insecure_transport"       // 403: plain HTTP off loopback where forbidden
	CodeReplayStoreFull        Code = "replay_store_full"        // 503 + Retry-After
	CodeReplayStoreUnavailable Code = "replay_store_unavailable" // 503 + Retry-After
	CodeRateLimiterUnavailable Code = "rate_limiter_unavailable" // 503 + Retry-After
)

// ProblemTypeBase prefixes every problem type URI: the type of code c is
// ProblemTypeBase + c, the anchor of its entry in the specification.
const ProblemTypeBase = "https://github.com/lifenavigator/crossservice/blob/main/SPEC.md#"

// ProblemContentType is the media type of RFC 9457 problem documents.
const ProblemContentType = "application/problem+json"

type codeInfo struct {
	status int
	title  string
	detail string // safe for an unauthenticated caller
}

var codes = map[Code]codeInfo{
	CodeHeaderMissing:          {401, "Signing header missing", "a required signing header is missing"},
	CodeHeaderMalformed:        {400, "Signing header malformed", "a signing header is malformed or repeated"},
	CodeRequestMalformed:       {400, "Request cannot be verified", "the method or request target cannot be canonicalised"},
	CodeUnsignedRequest:        {401, "Request not signed", "this endpoint requires a signed request"},
	CodeSchemeNotAllowed:       {401, "Signing scheme not allowed", "the signing scheme does not match the caller's registration"},
	CodeTimestampOutOfWindow:   {401, "Timestamp out of window", "X-Timestamp is outside the accepted window; check the client clock"},
	CodeBodyTooLarge:           {413, "Request body too large", "the request body exceeds the limit"},
	CodeBodyUnreadable:         {400, "Request body unreadable", "the request body could not be read"},
	CodeSignatureInvalid:       {401, "Signature invalid", "the signature does not verify"},
	CodeReplayDetected:         {401, "Replay detected", "this request was already accepted once"},
	CodeIdentityMismatch:       {403, "Certificate identity mismatch", "the client certificate does not name the signing service"},
	CodeServiceNotAuthorized:   {403, "Service not authorized", "the calling service may not call this endpoint"},
	CodeRateLimited:            {429, "Rate limited", "too many requests from this service"},
	CodeInsecureTransport:      {403, "TLS required", "this environment accepts requests over TLS only"},
	CodeReplayStoreFull:        {503, "Replay store full", "the server cannot record more requests right now"},
	CodeReplayStoreUnavailable: {503, "Replay store unavailable", "the server cannot check for replays right now"},
	CodeRateLimiterUnavailable: {503, "Rate limiter unavailable", "the server cannot apply its rate limit right now"},
}

// Status returns the HTTP status a verifier sends with c (0 if unknown).
func (c Code) Status() int { return codes[c].status }

// Problem is an RFC 9457 problem document as a verifier sends it, and an
// error as a client receives it (see [ParseProblem]).
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      Code   `json:"code"`
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter is the Retry-After header (delta-seconds), 0 if absent. It
	// is not part of the JSON document.
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("transport: remote problem %d %s: %s", p.Status, p.Code, p.Detail)
}

func newProblem(c Code, requestID string) *Problem {
	ci := codes[c]
	return &Problem{
		Type:      ProblemTypeBase + string(c),
		Title:     ci.title,
		Status:    ci.status,
		Detail:    ci.detail,
		Code:      c,
		RequestID: requestID,
	}
}

// write sends p. Responses to refused requests are never cached.
func (p *Problem) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((p.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if p.Status == http.StatusUnauthorized {
		// RFC 9110 §15.5.2: a 401 carries a challenge.
		h.Set("WWW-Authenticate", string(SchemeV1))
	}
	b, _ := json.Marshal(p)
	w.WriteHeader(p.Status)
	w.Write(append(b, '\n'))
}

// MaxProblemSize bounds what [ParseProblem] reads.
const MaxProblemSize = 64 << 10

// maxQuotedContentType bounds the Content-Type an error of ParseProblem quotes.
const maxQuotedContentType = 64

// ParseProblem reads a problem document from resp (at most 64 KiB of its
// body; the caller still closes resp.Body). It returns an error wrapping
// [ErrNotProblem] when the Content-Type is not application/problem+json or
// the body does not parse; Retry-After (delta-seconds) fills RetryAfter.
func ParseProblem(resp *http.Response) (*Problem, error) {
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != ProblemContentType {
		if len(ct) > maxQuotedContentType { // the remote's bytes: bounded in the error
			ct = ct[:maxQuotedContentType] + "..."
		}
		return nil, fmt.Errorf("transport: content type %q: %w", ct, ErrNotProblem)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxProblemSize))
	if err != nil {
		return nil, fmt.Errorf("transport: reading problem: %w", err)
	}
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("transport: problem document does not parse: %w", ErrNotProblem)
	}
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		p.RetryAfter = d
	}
	return &p, nil
}

// ParseRetryAfter reads a Retry-After field value (RFC 9110 section 10.2.3):
// delay-seconds (digits only, no sign, at most 2^32-1) or an HTTP-date,
// measured from now and never negative. ok is false for an empty or invalid
// value. The client and [ParseProblem] share it, so both read one header the
// same way.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, t.Sub(now)), true
}
