package devcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifenavigator/crossservice/transport/devcert"
)

func TestWriteModesAndNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcert.Write(dir, []string{"frontend", "financial-service"}, devcert.Options{}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600, "frontend.pem": 0o644, "frontend-key.pem": 0o600,
		"financial-service-key.pem": 0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, "frontend-key.pem"))
	_, err := devcert.Write(dir, []string{"frontend"}, devcert.Options{})
	if !errors.Is(err, devcert.ErrExists) {
		t.Fatalf("second write: got %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "frontend-key.pem"))
	if string(before) != string(after) {
		t.Fatal("refused write changed a file")
	}
	if _, err := devcert.Write(dir, []string{"frontend"}, devcert.Options{Force: true}); err != nil {
		t.Fatalf("forced write: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".pem" {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func TestInvalidServiceName(t *testing.T) {
	for _, bad := range []string{"", "Frontend", "a b", "*"} {
		if _, err := devcert.Generate([]string{bad}, devcert.Options{}); err == nil {
			t.Errorf("Generate(%q): no error", bad)
		}
	}
}

// TestMutualTLS13 runs a real TLS 1.3 handshake with both sides presenting
// devcert certificates and checks the identities each side sees.
func TestMutualTLS13(t *testing.T) {
	set, err := devcert.Generate([]string{"financial-service", "frontend"}, devcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{set.Services["financial-service"]},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: set.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *x509.Certificate, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- nil
			return
		}
		got <- tc.ConnectionState().PeerCertificates[0]
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: set.Pool(), ServerName: "localhost",
		Certificates: []tls.Certificate{set.Services["frontend"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
	if err := c.VerifyHostname("financial-service"); err != nil {
		t.Fatalf("server cert does not name its service: %v", err)
	}
	peer := <-got
	if peer == nil {
		t.Fatal("server handshake failed")
	}
	if peer.Subject.CommonName != "frontend" || len(peer.URIs) != 1 || peer.URIs[0].String() != "spiffe://crossservice.dev/frontend" {
		t.Fatalf("client identity: CN %q URIs %v", peer.Subject.CommonName, peer.URIs)
	}
}

func Example() {
	dir, _ := os.MkdirTemp("", "devcert")
	defer os.RemoveAll(dir)
	set, err := devcert.Write(dir, []string{"financial-service"}, devcert.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	leaf, _ := x509.ParseCertificate(set.Services["financial-service"].Certificate[0])
	fmt.Println(leaf.Subject.CommonName, leaf.DNSNames, leaf.URIs[0])
	// Output: financial-service [financial-service localhost] spiffe://crossservice.dev/financial-service
}
