package transport

import (
	"net/url"
	"strings"
	"testing"
)

// hasControl reads eight bytes at a time: it must agree with the byte loop
// for every byte value at every position, next to bytes that stress the
// borrows of its word arithmetic.
func TestHasControlMatchesByteLoop(t *testing.T) {
	ref := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f {
				return true
			}
		}
		return false
	}
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 20; pos++ {
			for n := pos + 1; n <= 20; n++ {
				b := make([]byte, n)
				for i := range b {
					b[i] = 'a'
				}
				b[pos] = byte(c)
				if got, want := hasControl(string(b)), ref(string(b)); got != want {
					t.Fatalf("c=%#x pos=%d n=%d got %v", c, pos, n, got)
				}
				// neighbours that stress borrows
				for _, nb := range []byte{0x00, 0x20, 0x7e, 0x7f, 0x80, 0xff, 0x1f, 0x21} {
					b2 := append([]byte(nil), b...)
					if pos+1 < n {
						b2[pos+1] = nb
					}
					if pos > 0 {
						b2[pos-1] = nb
					}
					if got, want := hasControl(string(b2)), ref(string(b2)); got != want {
						t.Fatalf("c=%#x nb=%#x pos=%d n=%d got %v", c, nb, pos, n, got)
					}
				}
			}
		}
	}
}

// escapedPath's table must agree with url.URL.EscapedPath for every byte
// value, alone and inside a path, with and without a RawPath, and for
// paths parsed from request URIs; FuzzEscapedPath carries it further.
func TestEscapedPathMatchesNetURL(t *testing.T) {
	check := func(u *url.URL) {
		t.Helper()
		got, verbatim := escapedPath(u)
		if want := u.EscapedPath(); got != want {
			t.Fatalf("Path %q RawPath %q: got %q, net/url %q", u.Path, u.RawPath, got, want)
		}
		checkVerbatim(t, got, verbatim)
	}
	for c := 0; c < 256; c++ {
		for _, p := range []string{string(rune(c)), "/" + string([]byte{byte(c)}), "/a" + string([]byte{byte(c)}) + "b/", string([]byte{byte(c)})} {
			check(&url.URL{Path: p})
			check(&url.URL{Path: p, RawPath: p})
		}
	}
	for _, p := range []string{"", "*", "/*", "/", "/v1/accounts/42", "/a b", "/a%2Fb", "/é", "/a?b", "/a#b", "/~user/$x&y+z,w;k=v:@"} {
		check(&url.URL{Path: p})
	}
	for _, uri := range []string{"/a%2Fb/c", "/a%2fb", "/%7Euser", "/a%20b", "/plain/path"} {
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		check(u)
	}
}

// checkVerbatim: a path escapedPath calls verbatim holds no control byte
// and no '?', which checkRequestLine then does not look for.
func checkVerbatim(t *testing.T, p string, verbatim bool) {
	t.Helper()
	if verbatim && (hasControl(p) || strings.IndexByte(p, '?') >= 0) {
		t.Fatalf("%q called verbatim", p)
	}
}

func FuzzEscapedPath(f *testing.F) {
	for _, s := range []string{"/v1/accounts/42", "/a%2Fb", "*", "/a b/é", ""} {
		f.Add(s, "")
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, path, raw string) {
		u := &url.URL{Path: path, RawPath: raw}
		got, verbatim := escapedPath(u)
		if want := u.EscapedPath(); got != want {
			t.Fatalf("Path %q RawPath %q: got %q, net/url %q", path, raw, got, want)
		}
		checkVerbatim(t, got, verbatim)
		if v, err := url.ParseRequestURI("/" + path); err == nil {
			got, verbatim := escapedPath(v)
			if want := v.EscapedPath(); got != want {
				t.Fatalf("parsed %q: got %q, net/url %q", path, got, want)
			}
			checkVerbatim(t, got, verbatim)
		}
	})
}
