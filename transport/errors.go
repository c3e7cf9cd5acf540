package transport

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with [errors.Is]); typed errors ([ComponentError],
// [MissingEnvError]) add structured detail (test with [errors.As]). No error
// text ever contains key material, a signature or a request body.
var (
	// ErrInvalidConfig: a Config, SignerConfig or other constructor input is
	// invalid. Returned at construction time, never per request.
	ErrInvalidConfig = errors.New("transport: invalid configuration")

	// ErrInvalidKey: a key id does not follow the grammar or the key
	// material is unusable. ErrKeyTooShort is the common special case.
	ErrInvalidKey = errors.New("transport: invalid key")

	// ErrKeyTooShort: key material shorter than [MinKeyBytes]. It wraps
	// ErrInvalidKey.
	ErrKeyTooShort = fmt.Errorf("%w: shorter than 32 bytes", ErrInvalidKey)

	// ErrInvalidComponent: a request component cannot be signed (a control
	// byte, a method that is not an uppercase token, an opaque URL, a
	// duplicated Content-Type...). See [ComponentError].
	ErrInvalidComponent = errors.New("transport: request component cannot be signed")

	// ErrBodyNotRewindable: the request has a body but no GetBody, so it can
	// be neither hashed before sending nor sent again on a retry.
	ErrBodyNotRewindable = errors.New("transport: request body cannot be rewound (set GetBody)")

	// ErrSharedKey: one secret is configured for several callers, so a
	// verifier could not tell them apart: any of them could sign as the
	// others. It wraps ErrInvalidConfig; see [SharedKeyError] for the names.
	ErrSharedKey = fmt.Errorf("%w: one key for several callers", ErrInvalidConfig)

	// ErrEnvMissing: a required environment variable is unset. See
	// [MissingEnvError] for the names.
	ErrEnvMissing = errors.New("transport: environment variable missing")

	// ErrKeyFileInsecure: a key file is readable or writable by group or
	// others.
	ErrKeyFileInsecure = errors.New("transport: key file permissions too open")

	// ErrReplayStoreFull: the in-memory replay store holds its maximum
	// number of unexpired entries and refuses new ones rather than forget
	// one early. The verifier answers 503 replay_store_full.
	ErrReplayStoreFull = errors.New("transport: replay store full")

	// ErrInsecureListener: a plain-HTTP listener on a non-loopback address
	// in an environment that forbids it.
	ErrInsecureListener = errors.New("transport: plain HTTP outside loopback not allowed in this environment")

	// ErrNoPeerIdentity: a client certificate carries no usable service
	// identity (see [SPIFFEIdentity]).
	ErrNoPeerIdentity = errors.New("transport: certificate names no service")

	// ErrNotProblem: a response is not an application/problem+json document.
	ErrNotProblem = errors.New("transport: response is not a problem document")
)

// ComponentError tells which component of a request could not be signed and
// why. It never holds the component's value.
type ComponentError struct {
	Component string // "method", "path", "query", "content type", ...
	Reason    string
}

func (e *ComponentError) Error() string {
	return "transport: request component cannot be signed: " + e.Component + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidComponent) true.
func (e *ComponentError) Unwrap() error { return ErrInvalidComponent }

// SharedKeyError names the callers that would share one key ([New]) or the
// INTERNAL_API_KEY fallback ([CallerKeysFromEnv]). It never holds the key.
type SharedKeyError struct {
	Callers []string // the callers sharing the key, in configuration order
	// Variables, from CallerKeysFromEnv only: each caller's own variable
	// (<PREFIX>_API_KEY), unset, which would give it its own key.
	Variables []string
}

func (e *SharedKeyError) Error() string {
	who := strings.Join(e.Callers, " and ")
	if len(e.Variables) > 0 {
		return "transport: " + EnvInternalAPIKey + " would be the key of callers " + who +
			", and a key shared by several callers cannot tell them apart: set " + strings.Join(e.Variables, " and ")
	}
	return "transport: Config: callers " + who + " have the same key, which cannot tell them apart: " +
		"give each caller its own key (Config.AllowSharedKeys permits it outside production)"
}

// Unwrap makes errors.Is(err, ErrSharedKey) and errors.Is(err,
// ErrInvalidConfig) true.
func (e *SharedKeyError) Unwrap() error { return ErrSharedKey }

// MissingEnvError names the environment variables of which none was set.
type MissingEnvError struct {
	Names []string // tried in this order
}

func (e *MissingEnvError) Error() string {
	return "transport: environment variable missing: set " + strings.Join(e.Names, " or ")
}

// Unwrap makes errors.Is(err, ErrEnvMissing) true.
func (e *MissingEnvError) Unwrap() error { return ErrEnvMissing }
