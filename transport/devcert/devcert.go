// Package devcert makes a local certificate authority and one certificate per
// service, so that development machines, tests and the demo run over real TLS
// 1.3 on loopback. It is for development only: the CA key sits next to the
// certificates, unencrypted (mode 0600), and certificates live 30 days.
//
// # Identity
//
// Each service certificate names the service three ways, so that every
// identity check of [github.com/lifenavigator/crossservice/transport] finds it:
// the Common Name, a DNS SAN equal to the service name, and a URI SAN
// spiffe://<trust domain>/<service>. It also carries the DNS SAN "localhost"
// and the IP SANs 127.0.0.1 and ::1, and is valid for both server and client
// authentication, so one file pair serves a service as server and as mTLS client.
//
// # Files
//
// [Write] creates, in a directory: ca.pem, ca-key.pem, and for each service
// <service>.pem and <service>-key.pem. Key files are written with mode 0600;
// nothing is overwritten unless [Options.Force] is set, and a failure leaves no
// half-written file (each file is written to a temporary name and renamed).
package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/lifenavigator/crossservice/internal/names"
)

// DefaultTrustDomain is the SPIFFE trust domain used when Options.TrustDomain is empty.
const DefaultTrustDomain = "crossservice.dev"

// ErrExists is returned by [Write] when a file it would write already exists and
// Options.Force is not set.
var ErrExists = errors.New("devcert: file exists (use Force to overwrite)")

// Options tunes [Generate] and [Write]. The zero value is ready to use.
type Options struct {
	// TrustDomain for the spiffe:// URI SAN; empty means DefaultTrustDomain.
	TrustDomain string
	// Validity of every certificate; zero means 30 days.
	Validity time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Force lets Write overwrite existing files.
	Force bool
}

// Set is a CA and the certificates it issued.
type Set struct {
	CA       *x509.Certificate
	CAPEM    []byte
	caKey    *ecdsa.PrivateKey
	Services map[string]tls.Certificate
	certPEM  map[string][]byte
	keyPEM   map[string][]byte
}

// String describes the set without key material.
func (s *Set) String() string {
	return fmt.Sprintf("devcert.Set{CA: %q, services: %d}", s.CA.Subject.CommonName, len(s.Services))
}

// Pool returns a certificate pool holding the CA.
func (s *Set) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.CA)
	return p
}

// SPIFFEID returns the URI SAN a service certificate carries.
func SPIFFEID(trustDomain, service string) *url.URL {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/" + service}
}

// Generate creates a CA and one certificate per service in memory.
func Generate(services []string, opt Options) (*Set, error) {
	if len(services) == 0 {
		return nil, errors.New("devcert: no services")
	}
	for _, s := range services {
		if !names.Valid(s) {
			return nil, fmt.Errorf("devcert: %q is not a valid service name", s)
		}
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	validity := opt.Validity
	if validity == 0 {
		validity = 30 * 24 * time.Hour
	}
	if validity < 0 {
		return nil, errors.New("devcert: negative validity")
	}
	notBefore := now().Add(-5 * time.Minute).UTC()
	notAfter := notBefore.Add(validity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcert: CA key: %w", err)
	}
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "crossservice development CA " + caSerial.Text(16)[:8], Organization: []string{"crossservice (development only)"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("devcert: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("devcert: CA certificate: %w", err)
	}
	set := &Set{
		CA: ca, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), caKey: caKey,
		Services: map[string]tls.Certificate{}, certPEM: map[string][]byte{}, keyPEM: map[string][]byte{},
	}
	for _, svc := range services {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("devcert: key for %s: %w", svc, err)
		}
		sn, err := serial()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: sn,
			Subject:      pkix.Name{CommonName: svc},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:     []string{svc, "localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			URIs:         []*url.URL{SPIFFEID(opt.TrustDomain, svc)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("devcert: certificate for %s: %w", svc, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("devcert: key for %s: %w", svc, err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("devcert: pair for %s: %w", svc, err)
		}
		set.Services[svc] = pair
		set.certPEM[svc] = certPEM
		set.keyPEM[svc] = keyPEM
	}
	return set, nil
}

// Write generates a set with [Generate] and writes it into dir (created with
// mode 0700 if missing). It returns ErrExists, writing nothing, when any target
// file exists and opt.Force is false.
func Write(dir string, services []string, opt Options) (*Set, error) {
	set, err := Generate(services, opt)
	if err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(set.caKey)
	if err != nil {
		return nil, fmt.Errorf("devcert: CA key: %w", err)
	}
	files := []file{
		{"ca.pem", set.CAPEM, 0o644},
		{"ca-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}), 0o600},
	}
	for _, svc := range services {
		files = append(files, file{svc + ".pem", set.certPEM[svc], 0o644}, file{svc + "-key.pem", set.keyPEM[svc], 0o600})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	if !opt.Force {
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
				return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, f.name))
			}
		}
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// LoadPair reads <service>.pem and <service>-key.pem from dir.
func LoadPair(dir, service string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, service+".pem"), filepath.Join(dir, service+"-key.pem"))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devcert: load %s: %w", service, err)
	}
	return c, nil
}

// LoadPool reads ca.pem from dir into a certificate pool.
func LoadPool(dir string) (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("devcert: %s holds no certificate", filepath.Join(dir, "ca.pem"))
	}
	return p, nil
}

type file struct {
	name string
	data []byte
	mode fs.FileMode
}

func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("devcert: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("devcert: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("devcert: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("devcert: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devcert: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devcert: %w", err)
	}
	return nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devcert: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
