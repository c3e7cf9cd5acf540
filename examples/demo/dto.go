package main

// Account is the DTO of DESIGN.md, annotated once: the frontend seals it for
// each service, and each service opens it straight into this type.
type Account struct {
	ID      string  `json:"id"      share:"financial-service,analytics-service" validate:"required"`
	Owner   string  `json:"owner"   share:"financial-service" sensitive:"random" validate:"required"`
	SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Balance float64 `json:"balance" share:"*"`
	Notes   string  `json:"notes"` // no share tag: never leaves the frontend
}

// CrossServiceType names the type in envelopes, independent of the Go package.
func (Account) CrossServiceType() string { return "demo.Account" }

// Receipt is financial-service's sealed answer to the frontend.
type Receipt struct {
	AccountID string `json:"account_id" share:"frontend"`
	Status    string `json:"status"     share:"frontend"`
	// RiskBand is sensitive: sealed for the frontend, opened by its client.
	RiskBand string `json:"risk_band" share:"frontend" sensitive:"random"`
}

// CrossServiceType names the type in envelopes.
func (Receipt) CrossServiceType() string { return "demo.Receipt" }

// Ack is analytics-service's sealed answer to the frontend.
type Ack struct {
	Accepted bool `json:"accepted" share:"frontend"`
	Fields   int  `json:"fields"   share:"frontend"`
}

// CrossServiceType names the type in envelopes.
func (Ack) CrossServiceType() string { return "demo.Ack" }

// Echo is the plain JSON answer of financial-service's /echo route, which the
// Node client calls.
type Echo struct {
	Caller string `json:"caller"`
	Scheme string `json:"scheme"`
	Bytes  int    `json:"bytes"`
}
