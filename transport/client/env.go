package client

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/lifenavigator/crossservice/internal/names"
	"github.com/lifenavigator/crossservice/transport"
)

// The environment variables of the original system that [LoadEnv] reads.
// <PREFIX> is [transport.EnvPrefix] of the target: upper-cased, '-' → '_', a
// trailing "_API" dropped ("financial-api" → FINANCIAL_API_URL).
const (
	EnvServiceName = "SERVICE_NAME"              // this service's name
	EnvAppEnv      = transport.EnvAppEnv         // development | staging | production
	EnvFallbackKey = transport.EnvInternalAPIKey // key used when <PREFIX>_API_KEY is unset
)

// ErrEnvMalformed is the cause of an [*EnvError] for a variable that is set
// but unusable. A missing one has cause [transport.ErrEnvMissing].
var ErrEnvMalformed = errors.New("client: environment variable malformed")

// EnvError names the environment variable that is missing or malformed. Its
// text never holds the variable's value.
type EnvError struct {
	Var string
	// Fallbacks are the variables also tried, in order, when Var was missing.
	Fallbacks []string
	Missing   bool
	// Reason says what is wrong with a malformed value, without quoting it.
	Reason string
}

func (e *EnvError) Error() string {
	if e.Missing {
		s := "client: environment variable " + e.Var + " is not set"
		if len(e.Fallbacks) > 0 {
			s += " (nor " + strings.Join(e.Fallbacks, ", ") + ")"
		}
		return s
	}
	return "client: environment variable " + e.Var + " is malformed: " + e.Reason
}

// Unwrap makes errors.Is(err, transport.ErrEnvMissing) or
// errors.Is(err, ErrEnvMalformed) true.
func (e *EnvError) Unwrap() error {
	if e.Missing {
		return transport.ErrEnvMissing
	}
	return ErrEnvMalformed
}

// Env is a client configuration read from the environment by [LoadEnv].
type Env struct {
	Service     string                // SERVICE_NAME
	Environment transport.Environment // APP_ENV
	Target      string                // the target named by the caller
	BaseURL     string                // <PREFIX>_API_URL
	Key         transport.Key         // <PREFIX>_API_KEY, else INTERNAL_API_KEY (key ids: the _ID variables)
	KeyVar      string                // the variable the key came from
}

// LoadEnv reads the configuration for calling target from the environment
// through lookup (nil: os.LookupEnv): SERVICE_NAME, APP_ENV,
// <PREFIX>_API_URL and <PREFIX>_API_KEY with INTERNAL_API_KEY as the
// fallback (keys and their ids as [transport.TargetKeyFromEnv] reads them).
// A missing or malformed variable is an [*EnvError] naming it. Where the
// environment forbids plain HTTP ([transport.Environment.AllowsPlainHTTP]:
// staging and production), an http:// URL whose host is not loopback is
// refused.
func LoadEnv(target string, lookup func(string) (string, bool)) (*Env, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	prefix := transport.EnvPrefix(target)
	if prefix == "" {
		return nil, configError("target %q is not a service name", target)
	}
	get := func(name string) (string, error) {
		v, ok := lookup(name)
		if !ok || v == "" {
			return "", &EnvError{Var: name, Missing: true}
		}
		return v, nil
	}
	e := &Env{Target: target}

	svc, err := get(EnvServiceName)
	if err != nil {
		return nil, err
	}
	if !names.Valid(svc) {
		return nil, &EnvError{Var: EnvServiceName, Reason: "not a service name (lowercase letters, digits, single hyphens; 1..63 bytes)"}
	}
	e.Service = svc

	envName, err := get(EnvAppEnv)
	if err != nil {
		return nil, err
	}
	if e.Environment, err = transport.ParseEnvironment(envName); err != nil {
		return nil, &EnvError{Var: EnvAppEnv, Reason: "not development, staging or production"}
	}

	urlVar := prefix + "_API_URL"
	raw, err := get(urlVar)
	if err != nil {
		return nil, err
	}
	u, perr := url.Parse(raw)
	switch {
	case perr != nil || u.Host == "" || u.Opaque != "":
		return nil, &EnvError{Var: urlVar, Reason: "not an absolute URL with a host"}
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, &EnvError{Var: urlVar, Reason: "scheme is not https or http"}
	case u.User != nil:
		return nil, &EnvError{Var: urlVar, Reason: "holds user info; put credentials in " + prefix + "_API_KEY"}
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, &EnvError{Var: urlVar, Reason: "holds a query or fragment"}
	case u.Scheme == "http" && !e.Environment.AllowsPlainHTTP() && !loopbackHost(u.Hostname()):
		return nil, &EnvError{Var: urlVar, Reason: "http:// to a non-loopback host is refused in " + string(e.Environment) + "; use https://"}
	}
	e.BaseURL = raw

	e.Key, err = transport.TargetKeyFromEnv(lookup, target)
	if err != nil {
		var me *transport.MissingEnvError
		if errors.As(err, &me) && len(me.Names) > 0 {
			return nil, &EnvError{Var: me.Names[0], Fallbacks: me.Names[1:], Missing: true}
		}
		// Set but unusable: name the variable that supplied it.
		v := prefix + "_API_KEY"
		if s, ok := lookup(v); !ok || s == "" {
			v = EnvFallbackKey
		}
		if errors.Is(err, transport.ErrKeyTooShort) {
			return nil, &EnvError{Var: v, Reason: "key shorter than 32 bytes"}
		}
		return nil, &EnvError{Var: v + "_ID", Reason: "key id is not 1..64 bytes of [A-Za-z0-9._:-]"}
	}
	e.KeyVar = prefix + "_API_KEY"
	if s, ok := lookup(e.KeyVar); !ok || s == "" {
		e.KeyVar = EnvFallbackKey
	}
	return e, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Signer returns a v1 [transport.Signer] for calls from e.Service to e.Target.
func (e *Env) Signer() (*transport.Signer, error) {
	return transport.NewSigner(transport.SignerConfig{
		Caller: e.Service, Target: e.Target, Environment: e.Environment, Key: e.Key,
	})
}

// Config returns a [Config] for the target with BaseURL, Transport.Target and
// a Transport.Signer filled in; add a Codec, a TLS 1.3 Base and the rest.
func (e *Env) Config() (Config, error) {
	s, err := e.Signer()
	if err != nil {
		return Config{}, err
	}
	return Config{BaseURL: e.BaseURL, Transport: TransportConfig{Target: e.Target, Signer: s}}, nil
}
