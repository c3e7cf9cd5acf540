package client

import (
	"net/http"

	"github.com/lifenavigator/crossservice/transport"
)

// readProblem reads (bounded) and closes resp.Body and returns its problem,
// or one with only Status and RequestID when the body is not a problem
// document. sentID, the request id the client sent, is the last fallback.
func readProblem(resp *http.Response, sentID string) *transport.Problem {
	var p *transport.Problem
	if resp.Body != nil {
		p, _ = transport.ParseProblem(resp)
		_ = resp.Body.Close()
	}
	if p == nil {
		p = &transport.Problem{}
	}
	p.Status = resp.StatusCode // the status line wins over the body's claim
	if p.RequestID == "" {
		p.RequestID = resp.Header.Get("X-Request-ID")
	}
	if p.RequestID == "" {
		p.RequestID = sentID
	}
	return p
}
