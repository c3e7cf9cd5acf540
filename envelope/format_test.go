package envelope_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/envelope"
)

// canonicalHeader is a valid header as this package writes it.
const canonicalHeader = `{"v":1,"id":"019ad0b0-5d2b-7c3e-9f00-0123456789ab","snd":"frontend","rcp":"financial-service",` +
	`"typ":"accounts.Account","iat":"2026-11-29T16:20:46.123Z","key":{"alg":"hpke","kid":"123456","wk":"AQAB4kA"}}`

const canonicalTag = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw" // 28 bytes

func canonicalEnvelope(hdr, data, tag string) string {
	return `{"hdr":` + hdr + `,"data":` + data + `,"tag":"` + tag + `"}`
}

func TestParseCanonical(t *testing.T) {
	in := canonicalEnvelope(canonicalHeader, `{"a":[1,2.5e-3,"x\u00e9",true,null,{}],"b":{"$enc":"random","ct":"AA"}}`, canonicalTag)
	e, err := envelope.Parse([]byte(in))
	require.NoError(t, err)
	require.Equal(t, in, string(e.Marshal()))
	require.Equal(t, canonicalHeader, string(e.RawHeader))
	h := e.Header
	require.Equal(t, "019ad0b0-5d2b-7c3e-9f00-0123456789ab", h.ID)
	require.Equal(t, "frontend", h.Sender)
	require.Equal(t, "financial-service", h.Recipient)
	require.Equal(t, "accounts.Account", h.Type)
	require.Equal(t, time.Date(2026, 11, 29, 16, 20, 46, 123e6, time.UTC), h.IssuedAt)
	require.Equal(t, envelope.KeyInfo{Alg: "hpke", KeyID: "123456", Wrapped: []byte{1, 0, 1, 0xe2, 0x40}}, h.Key)
	require.Len(t, e.Tag, 28)

	// From the fields alone, the same bytes.
	e.RawHeader = nil
	require.Equal(t, in, string(e.Marshal()))

	// Parse does not alias its input.
	b := []byte(in)
	e, err = envelope.Parse(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 'x'
	}
	require.Equal(t, canonicalHeader, string(e.RawHeader))
}

func TestParseAcceptsWhitespaceAndOrder(t *testing.T) {
	hdr := "{ \"key\" : {\"wk\":\"AQAB4kA\",\"kid\":\"123456\",\"alg\":\"hpke\"},\n\t\"iat\":\"2026-11-29T16:20:46.123Z\"," +
		`"typ":"a\"b\\c\/d","rcp":"financial-service","snd":"frontend","id":"019ad0b0-5d2b-7c3e-9f00-0123456789ab","v":1 }`
	in := " {\r\n\"tag\" : \"" + canonicalTag + "\" , \"data\":{ \"a\" : 1 } ,\"hdr\":" + hdr + "}\n"
	e, err := envelope.Parse([]byte(in))
	require.NoError(t, err)
	require.Equal(t, hdr, string(e.RawHeader), "hdr kept byte for byte")
	require.Equal(t, `{ "a" : 1 }`, string(e.Data))
	require.Equal(t, `a"b\c/d`, e.Header.Type)
	// Marshal gives the canonical top level around the same hdr and data.
	require.Equal(t, canonicalEnvelope(hdr, `{ "a" : 1 }`, canonicalTag), string(e.Marshal()))
	// And a canonical header from the fields, escaping only " and \.
	e.RawHeader = nil
	require.Contains(t, string(e.Marshal()), `"typ":"a\"b\\c/d"`)
}

func TestParseRefuses(t *testing.T) {
	good := canonicalEnvelope(canonicalHeader, `{"a":1}`, canonicalTag)
	_, err := envelope.Parse([]byte(good))
	require.NoError(t, err)

	hdr := func(old, new string) string {
		require.Contains(t, canonicalHeader, old)
		return canonicalEnvelope(strings.Replace(canonicalHeader, old, new, 1), `{"a":1}`, canonicalTag)
	}
	cases := map[string]string{
		"empty":                   ``,
		"not an object":           `[]`,
		"trailing garbage":        good + `x`,
		"two objects":             good + `{}`,
		"trailing comma":          strings.TrimSuffix(good, "}") + `,}`,
		"unknown top member":      strings.TrimSuffix(good, "}") + `,"x":1}`,
		"duplicate top member":    strings.TrimSuffix(good, "}") + `,"tag":"` + canonicalTag + `"}`,
		"duplicate via escape":    strings.TrimSuffix(good, "}") + `,"t\u0061g":"` + canonicalTag + `"}`,
		"missing tag":             `{"hdr":` + canonicalHeader + `,"data":{}}`,
		"missing data":            `{"hdr":` + canonicalHeader + `,"tag":"` + canonicalTag + `"}`,
		"missing hdr":             `{"data":{},"tag":"` + canonicalTag + `"}`,
		"data array":              canonicalEnvelope(canonicalHeader, `[1]`, canonicalTag),
		"data string":             canonicalEnvelope(canonicalHeader, `"x"`, canonicalTag),
		"data bad json":           canonicalEnvelope(canonicalHeader, `{"a":01}`, canonicalTag),
		"data bad escape":         canonicalEnvelope(canonicalHeader, `{"a":"\x"}`, canonicalTag),
		"data control char":       canonicalEnvelope(canonicalHeader, "{\"a\":\"\n\"}", canonicalTag),
		"data too deep":           canonicalEnvelope(canonicalHeader, `{"a":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`}`, canonicalTag),
		"data objects too deep":   canonicalEnvelope(canonicalHeader, strings.Repeat(`{"a":`, 1001)+`1`+strings.Repeat("}", 1001), canonicalTag),
		"tag raw newline":         canonicalEnvelope(canonicalHeader, `{}`, canonicalTag[:10]+"\n"+canonicalTag[10:]),
		"tag raw CR":              canonicalEnvelope(canonicalHeader, `{}`, canonicalTag[:12]+"\r"+canonicalTag[12:]),
		"invalid utf8":            canonicalEnvelope(canonicalHeader, "{\"a\":\"\xc3\x28\"}", canonicalTag),
		"tag padded":              canonicalEnvelope(canonicalHeader, `{}`, canonicalTag+"=="),
		"tag short":               canonicalEnvelope(canonicalHeader, `{}`, canonicalTag[:36]),
		"tag long":                canonicalEnvelope(canonicalHeader, `{}`, canonicalTag+"AAAA"),
		"tag std alphabet":        canonicalEnvelope(canonicalHeader, `{}`, "+"+canonicalTag[1:]),
		"tag newline":             canonicalEnvelope(canonicalHeader, `{}`, canonicalTag[:10]+`\n`+canonicalTag[10:]),
		"tag trailing bits":       canonicalEnvelope(canonicalHeader, `{}`, canonicalTag[:37]+"b"),
		"tag number":              `{"hdr":` + canonicalHeader + `,"data":{},"tag":1}`,
		"v 2":                     hdr(`"v":1`, `"v":2`),
		"v 1.0":                   hdr(`"v":1`, `"v":1.0`),
		"v string":                hdr(`"v":1`, `"v":"1"`),
		"v missing":               hdr(`"v":1,`, ``),
		"unknown hdr member":      hdr(`"v":1`, `"v":1,"x":null`),
		"duplicate hdr member":    hdr(`"v":1`, `"v":1,"snd":"frontend"`),
		"uuid v4":                 hdr(`-7c3e-`, `-4c3e-`),
		"uuid uppercase":          hdr(`0123456789ab`, `0123456789AB`),
		"uuid variant":            hdr(`-9f00-`, `-cf00-`),
		"uuid no dashes":          hdr(`019ad0b0-5d2b-7c3e-9f00-0123456789ab`, `019ad0b05d2b7c3e9f000123456789ab`),
		"snd invalid":             hdr(`"snd":"frontend"`, `"snd":"Frontend"`),
		"snd wildcard":            hdr(`"snd":"frontend"`, `"snd":"*"`),
		"rcp double hyphen":       hdr(`"rcp":"financial-service"`, `"rcp":"financial--service"`),
		"typ empty":               hdr(`"typ":"accounts.Account"`, `"typ":""`),
		"typ space":               hdr(`"typ":"accounts.Account"`, `"typ":"a b"`),
		"typ too long":            hdr(`"typ":"accounts.Account"`, `"typ":"`+strings.Repeat("t", 257)+`"`),
		"iat no millis":           hdr(`46.123Z`, `46Z`),
		"iat micros":              hdr(`46.123Z`, `46.123456Z`),
		"iat offset":              hdr(`46.123Z`, `46.123+00:00`),
		"iat lowercase z":         hdr(`46.123Z`, `46.123z`),
		"iat bad date":            hdr(`2026-11-29`, `2026-02-30`),
		"iat hour 24":             hdr(`T16:20`, `T24:20`),
		"iat second 60":           hdr(`:46.123Z`, `:60.123Z`),
		"iat day 00":              hdr(`-29T`, `-00T`),
		"iat space":               hdr(`T16`, ` 16`),
		"key not object":          hdr(`"key":{"alg":"hpke","kid":"123456","wk":"AQAB4kA"}`, `"key":"x"`),
		"alg unknown":             hdr(`"alg":"hpke"`, `"alg":"rsa"`),
		"kid empty":               hdr(`"kid":"123456"`, `"kid":""`),
		"kid bad char":            hdr(`"kid":"123456"`, `"kid":"12/3"`),
		"kid too long":            hdr(`"kid":"123456"`, `"kid":"`+strings.Repeat("1", 65)+`"`),
		"wk empty":                hdr(`"wk":"AQAB4kA"`, `"wk":""`),
		"wk padded":               hdr(`"wk":"AQAB4kA"`, `"wk":"AQAB4kA="`),
		"wk missing":              hdr(`,"wk":"AQAB4kA"`, ``),
		"unknown key member":      hdr(`"wk":"AQAB4kA"`, `"wk":"AQAB4kA","x":1`),
		"duplicate key member":    hdr(`"wk":"AQAB4kA"`, `"wk":"AQAB4kA","alg":"hpke"`),
		"hdr lone surrogate":      hdr(`"typ":"accounts.Account"`, `"typ":"\ud800"`),
		"hdr control in string":   hdr(`"typ":"accounts.Account"`, "\"typ\":\"a\tb\""),
		"hdr trailing comma":      hdr(`"v":1`, `"v":1,`),
		"unterminated":            good[:len(good)-1],
		"unterminated string":     good[:len(good)-3],
		"null":                    `null`,
		"hdr is string":           `{"hdr":"x","data":{},"tag":"` + canonicalTag + `"}`,
		"nested duplicate in key": hdr(`"alg":"hpke"`, `"alg":"hpke","alg":"aead"`),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := envelope.Parse([]byte(in))
			requireParseError(t, err)
			require.NotContains(t, err.Error(), "AQAB4kA", "input in error text")
			require.NotContains(t, err.Error(), "frontend", "input in error text")
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, nil)
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	data := []byte(`{"pad":"` + strings.Repeat("p", 2000) + `"}`)
	env, err := m.Finish(data)
	require.NoError(t, err)

	o := hpkeOpener(t, k, func(c *envelope.OpenerConfig) { c.MaxSize = len(env) })
	_, err = o.Open(env)
	require.NoError(t, err)
	o = hpkeOpener(t, k, func(c *envelope.OpenerConfig) { c.MaxSize = len(env) - 1 })
	_, err = o.Open(env)
	requireParseError(t, err)

	big := canonicalEnvelope(canonicalHeader, `{"p":"`+strings.Repeat("x", envelope.DefaultMaxSize)+`"}`, canonicalTag)
	_, err = envelope.Parse([]byte(big))
	requireParseError(t, err)
}

func TestMarshalIsCanonical(t *testing.T) {
	k := sharedKeys()
	env := sealDoc(t, hpkeSealer(t, k, nil))
	require.False(t, bytes.ContainsAny(env[:bytes.Index(env, []byte(`,"data":`))], " \n\t\r"), "no whitespace in hdr")
	require.True(t, bytes.HasPrefix(env, []byte(`{"hdr":{"v":1,"id":"`)))
	e, err := envelope.Parse(env)
	require.NoError(t, err)
	require.Equal(t, env, e.Marshal())
}

func TestParseDepthLimit(t *testing.T) {
	for _, tc := range []struct {
		levels int
		ok     bool
	}{{1000, true}, {1001, false}} {
		data := strings.Repeat(`{"a":`, tc.levels-1) + `{}` + strings.Repeat("}", tc.levels-1)
		_, err := envelope.Parse([]byte(canonicalEnvelope(canonicalHeader, data, canonicalTag)))
		if tc.ok {
			require.NoError(t, err, tc.levels)
		} else {
			requireParseError(t, err, tc.levels)
		}
		data = `{"a":` + strings.Repeat(`[`, tc.levels-1) + strings.Repeat(`]`, tc.levels-1) + `}`
		_, err = envelope.Parse([]byte(canonicalEnvelope(canonicalHeader, data, canonicalTag)))
		if tc.ok {
			require.NoError(t, err, tc.levels)
		} else {
			requireParseError(t, err, tc.levels)
		}
	}
}
