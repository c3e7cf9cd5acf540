package client

// ParseRetryAfter exposes the Retry-After parser to the fuzz target.
var ParseRetryAfter = parseRetryAfter
