package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/lifenavigator/crossservice/internal/names"
)

// ServerTLSConfig returns a server configuration pinned to TLS 1.3 (MinVersion
// and MaxVersion): a TLS 1.2 client fails the handshake. With clientCAs
// non-nil every client must present a certificate that chains to them
// (mutual TLS); the verifier then requires the certificate's identity
// ([SPIFFEIdentity]) to equal the signed X-Service-Name (403
// identity_mismatch otherwise). clientCAs nil: no client certificates.
func ServerTLSConfig(certs []tls.Certificate, clientCAs *x509.CertPool) (*tls.Config, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("transport: ServerTLSConfig: no certificate: %w", ErrInvalidConfig)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: certs,
		ClientAuth:   tls.NoClientCert,
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// ClientTLSConfig returns a client configuration pinned to TLS 1.3. rootCAs
// nil: the system roots. clientCert non-nil: presented for mutual TLS; its
// identity must name the service that signs the requests.
func ClientTLSConfig(rootCAs *x509.CertPool, clientCert *tls.Certificate) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    rootCAs,
	}
	if clientCert != nil {
		if len(clientCert.Certificate) == 0 {
			return nil, fmt.Errorf("transport: ClientTLSConfig: empty client certificate: %w", ErrInvalidConfig)
		}
		c.Certificates = []tls.Certificate{*clientCert}
	}
	return c, nil
}

// SPIFFEIdentity returns the service a certificate names: the last path
// segment of its one spiffe:// URI SAN, e.g. "frontend" for
// spiffe://lifenavigator.internal/ns/prod/frontend. It does not check the
// trust domain: with it, the CA pool given to [ServerTLSConfig] is all that
// is trusted, and a certificate those CAs issued for another trust domain
// names a service too. A verifier checks the trust domain when
// Config.TrustDomain is set. DNS SANs and the subject CN are ignored: DNS
// names describe where a service listens, not who it is, and CN is
// deprecated for identity. A certificate with zero or several spiffe URIs,
// or whose last segment is not a service name, returns [ErrNoPeerIdentity].
func SPIFFEIdentity(cert *x509.Certificate) (string, error) { return spiffeIdentity(cert, "") }

// spiffeIdentity is SPIFFEIdentity that, with trustDomain non-empty, also
// requires the ID's trust domain to be exactly trustDomain.
func spiffeIdentity(cert *x509.Certificate, trustDomain string) (string, error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			if found != nil {
				return "", fmt.Errorf("transport: several spiffe URIs: %w", ErrNoPeerIdentity)
			}
			found = u
		}
	}
	if found == nil {
		return "", ErrNoPeerIdentity
	}
	p := found.Path
	svc := p[strings.LastIndexByte(p, '/')+1:]
	if !names.Valid(svc) || found.Host == "" || found.RawQuery != "" || found.Fragment != "" {
		return "", fmt.Errorf("transport: spiffe URI does not end in a service name: %w", ErrNoPeerIdentity)
	}
	if trustDomain != "" && (found.Host != trustDomain || found.User != nil) {
		return "", fmt.Errorf("transport: spiffe URI outside trust domain %s: %w", trustDomain, ErrNoPeerIdentity)
	}
	return svc, nil
}

// validTrustDomain: a SPIFFE trust domain name, 1..255 bytes of lowercase
// letters, digits, '.', '-' and '_' (SPIFFE-ID specification, section 2.1).
func validTrustDomain(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// CheckListener returns [ErrInsecureListener] when env forbids plain HTTP
// off loopback ([Environment.AllowsPlainHTTP]), servesTLS is false, and addr
// is neither a loopback IP address nor a Unix socket. Call it at start-up
// for each listener the server is given; the verifier repeats the check per
// request (403 insecure_transport).
func CheckListener(env Environment, addr net.Addr, servesTLS bool) error {
	if servesTLS || env.AllowsPlainHTTP() {
		return nil
	}
	if isLocalAddr(addr) {
		return nil
	}
	return fmt.Errorf("transport: listener %v in %s: %w", addr, env, ErrInsecureListener)
}

func isLocalAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case nil:
		return false
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return false
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
}
