package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/lifenavigator/crossservice/transport/devcert"
)

func init() {
	register("certs dev", "write a local CA and a TLS certificate per service (development)", certsDev)
}

func certsDev(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "certs dev", "--out DIR --services a,b,c [flags]", `
Writes a development certificate authority and one certificate per service, so
that every service runs over real TLS 1.3 on loopback: ca.pem, ca-key.pem, and
<service>.pem and <service>-key.pem for each service (keys mode 0600, the
directory created mode 0700). Each certificate names its service as CN, as a DNS
name, and as spiffe://<trust domain>/<service> (the identity mutual TLS checks),
plus localhost, 127.0.0.1 and ::1, for server and client use.

Development only: the CA key sits unencrypted next to the certificates. Point
clients at ca.pem (xsvc probe --ca-file DIR/ca.pem, or XSVC_CA_FILE).
`)
	out := fs.String("out", "", "directory to write into (required)")
	services := fs.String("services", "", "comma-separated service names (required)")
	domain := fs.String("trust-domain", devcert.DefaultTrustDomain, "SPIFFE trust domain of the identities")
	validity := fs.Duration("validity", 30*24*time.Hour, "lifetime of every certificate")
	force := fs.Bool("force", false, "replace existing files")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "out", "services"); err != nil {
		return err
	}
	names := splitList(*services)
	if len(names) == 0 {
		return usage("--services names no service", "such as frontend,financial-api")
	}
	slices.Sort(names)
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		return usage("a service is listed twice in --services", "")
	}
	set, err := devcert.Write(*out, names, devcert.Options{TrustDomain: *domain, Validity: *validity, Force: *force})
	switch {
	case errors.Is(err, devcert.ErrExists):
		return fail("certificates already exist in "+*out, "use --force to replace them, or another --out")
	case err != nil:
		return fail(oneLine(err.Error()), "service names are lowercase letters, digits and single hyphens")
	}
	fmt.Fprintf(e.stdout, "wrote %s (CA %q, valid until %s)\n", filepath.Join(*out, "ca.pem"), set.CA.Subject.CommonName,
		set.CA.NotAfter.Format(time.DateOnly))
	for _, n := range names {
		fmt.Fprintf(e.stdout, "wrote %s, %s (%s)\n", filepath.Join(*out, n+".pem"), filepath.Join(*out, n+"-key.pem"),
			devcert.SPIFFEID(*domain, n))
	}
	return nil
}
