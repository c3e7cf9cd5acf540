package fieldcrypt

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/internal/names"
	"github.com/lifenavigator/crossservice/internal/sealhook"
	"github.com/lifenavigator/crossservice/schema"
)

// DefaultMaxDepth is the nesting depth (objects and arrays) a Codec writes
// and reads unless [Config.MaxDepth] says otherwise.
const DefaultMaxDepth = 64

// MaxMaxDepth is the largest [Config.MaxDepth]: the envelope format nests
// data at most 1000 levels deep (SPEC section 6), and a marker takes one
// more level than the value it stands for. Within it, whatever a Codec
// reads at its own depth, a full parse of the envelope accepts too.
const MaxMaxDepth = 999

// Config configures a [Codec]: the keys and limits of one service.
type Config struct {
	// Self is this service's name: the sender of what it seals and the
	// recipient of what it opens. Required.
	Self string

	// Identity opens envelopes addressed to Self: by default
	// envelope.NewHPKEIdentity over Self's private HPKE keyset, or an AEAD
	// identity (envelope.NewAEADKeysetIdentity, envelope.NewAEADIdentity).
	// nil: the codec only seals, and Open returns [ErrNoIdentity].
	Identity envelope.Identity
	// Deterministic is Self's deterministic keyset (Tink AES-SIV) for
	// opening sensitive:"deterministic" fields. nil: such fields are refused
	// when opening.
	Deterministic *keyset.Handle

	// Recipients are the services this codec seals for, by service name.
	// nil or empty: the codec only opens.
	Recipients map[string]Recipient

	// Reuse bounds the reuse of a wrapped data key per recipient; the zero
	// value reuses one for up to 1000 messages or 5 minutes (see
	// envelope.Reuse for the trade-off).
	Reuse envelope.Reuse
	// Cache bounds the cache of unwrapped data keys when opening; the zero
	// value keeps up to 1024 keys for 10 minutes.
	Cache envelope.Cache
	// MaxSize is the largest envelope Open accepts, in bytes; 0: 16 MiB.
	MaxSize int
	// MaxDepth bounds the nesting of objects and arrays when sealing and
	// opening (against recursion bombs and pointer cycles); 0:
	// [DefaultMaxDepth]. Negative or above [MaxMaxDepth] is an error.
	MaxDepth int

	// Validator checks validate tags. nil: a validator of this package's own
	// (with required on structs enabled, JSON names in error paths). A
	// custom one should register a tag name function returning JSON names,
	// so that error paths read like JSON.
	Validator *validator.Validate

	// Clock gives the issued-at time of what is sealed and the age of cached
	// keys; nil: time.Now.
	Clock func() time.Time
	// Rand gives data keys and message ids; nil: crypto/rand. The codec
	// serialises its reads, so it need not be safe for concurrent use.
	Rand io.Reader
}

// Recipient is what a codec needs to seal for one service.
type Recipient struct {
	// To wraps data keys for the service: by default
	// envelope.NewHPKERecipient over its PUBLIC HPKE keyset, or
	// envelope.NewAEADKeysetRecipient / envelope.NewAEADRecipient. Required.
	To envelope.Recipient
	// Deterministic is the service's deterministic keyset (Tink AES-SIV), a
	// secret shared with it. nil: sealing a sensitive:"deterministic" field
	// for it is an error.
	Deterministic *keyset.Handle
}

// Codec seals values of annotated struct types for other services and opens
// what they sealed for this one. It is safe for concurrent use.
type Codec struct {
	self     string
	sealers  map[string]*envelope.Sealer
	opener   *envelope.Opener
	validate *validator.Validate
	builtin  bool // validate is newValidator's: nothing else registered on it
	maxDepth int
	checks   sync.Map // *schema.Projection → *openCheck
	types    sync.Map // reflect.Type → *typePlan, for types whose plan builds
}

// typePlan is what Seal and Open look up for a type on every call, found
// once per codec and type: the plan, the projections for each recipient
// and for this service, and how to validate.
type typePlan struct {
	plan *schema.Plan
	to   map[string]sealTo  // by recipient (the keys of Codec.sealers); read-only
	self *schema.Projection // nil: Project(self) failed, or no opener
	chk  *openCheck         // how Open validates self
	val  *valPlan           // nil with a custom validator
}

type sealTo struct {
	s    *envelope.Sealer
	proj *schema.Projection
	err  error // from plan.Project
}

// typePlanFor returns t's typePlan, or the error of schema.For, which is
// not cached here (schema decides when a type's plan exists).
func (c *Codec) typePlanFor(t reflect.Type) (*typePlan, error) {
	if v, ok := c.types.Load(t); ok {
		return v.(*typePlan), nil
	}
	plan, err := schema.For(t)
	if err != nil {
		return nil, err
	}
	tp := &typePlan{plan: plan, to: make(map[string]sealTo, len(c.sealers))}
	for name, s := range c.sealers {
		proj, err := plan.Project(name)
		tp.to[name] = sealTo{s: s, proj: proj, err: err}
	}
	if c.builtin {
		tp.val = valPlanFor(t)
	}
	if c.opener != nil {
		if tp.self, _ = plan.Project(c.self); tp.self != nil { // on error open calls Project again for it
			tp.chk = c.check(plan, tp.self)
		}
	}
	v, _ := c.types.LoadOrStore(t, tp)
	return v.(*typePlan), nil
}

// openCheck is how Open validates a value of one projection, decided once.
type openCheck struct {
	skip   bool                 // nothing in the type can fail validation
	filter validator.FilterFunc // nil: every field (the filter would skip nothing that can fail)
	quick  *quickCheck          // of the fields received; nil: run validator
}

// New checks cfg and returns a Codec. Invalid values are errors, never
// silently replaced.
func New(cfg Config) (*Codec, error) {
	if !names.Valid(cfg.Self) {
		return nil, errors.New("fieldcrypt: Config.Self is not a valid service name")
	}
	if cfg.MaxDepth < 0 || cfg.MaxDepth > MaxMaxDepth {
		return nil, fmt.Errorf("fieldcrypt: Config.MaxDepth must be 0 to %d (the envelope's 1000 levels, one of them for a marker)", MaxMaxDepth)
	}
	if cfg.Identity == nil && cfg.Deterministic != nil {
		return nil, errors.New("fieldcrypt: Config.Deterministic is set without Config.Identity")
	}
	if cfg.Identity == nil && len(cfg.Recipients) == 0 {
		return nil, errors.New("fieldcrypt: Config has neither an Identity nor Recipients")
	}
	c := &Codec{self: cfg.Self, sealers: map[string]*envelope.Sealer{}, validate: cfg.Validator, maxDepth: cfg.MaxDepth}
	if c.validate == nil {
		c.validate, c.builtin = newValidator(), true
	}
	if c.maxDepth == 0 {
		c.maxDepth = DefaultMaxDepth
	}
	var rnd io.Reader
	if cfg.Rand != nil {
		rnd = &lockedReader{r: cfg.Rand}
	}
	names := make([]string, 0, len(cfg.Recipients))
	for name := range cfg.Recipients {
		names = append(names, name)
	}
	sort.Strings(names) // the first error is the same on every run
	for _, name := range names {
		r := cfg.Recipients[name]
		if r.To == nil {
			return nil, fmt.Errorf("fieldcrypt: Config.Recipients[%q].To is nil", name)
		}
		s, err := envelope.NewSealer(envelope.SealerConfig{
			Sender: cfg.Self, Recipient: name, To: r.To, Deterministic: r.Deterministic,
			Reuse: cfg.Reuse, Clock: cfg.Clock, Rand: rnd,
		})
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: Config.Recipients[%q]: %w", name, err)
		}
		c.sealers[name] = s
	}
	if cfg.Identity != nil {
		o, err := envelope.NewOpener(envelope.OpenerConfig{
			Self: cfg.Self, Identity: cfg.Identity, Deterministic: cfg.Deterministic,
			Cache: cfg.Cache, MaxSize: cfg.MaxSize, Clock: cfg.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: %w", err)
		}
		c.opener = o
	}
	return c, nil
}

// String describes the codec without key material.
func (c *Codec) String() string {
	rs := make([]string, 0, len(c.sealers))
	for name := range c.sealers {
		rs = append(rs, name)
	}
	sort.Strings(rs)
	return "fieldcrypt.Codec(" + c.self + " -> [" + strings.Join(rs, ",") + "], opens: " +
		fmt.Sprint(c.opener != nil) + ")"
}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

var bufPool = sync.Pool{New: func() any { return new(encoder) }}

// Seal validates v (a struct or a pointer to one, of a type whose plan
// builds) and returns an envelope for recipient holding only the fields
// shared with it, sensitive ones encrypted.
//
// Errors: a [*schema.TagError] for the type's annotations, a
// [*ValidationError] for a value that fails its validate tags (checked on
// the whole value, shared or not), [ErrUnknownRecipient], an
// [*InvalidValueError]; none quotes a value.
//
// A value passed by value is copied first (so that pointer-receiver
// MarshalJSON methods are used): pass a pointer to avoid the copy.
func (c *Codec) Seal(v any, recipient string) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, &InvalidValueError{Op: "seal", Type: reflect.TypeOf(v)}
	}
	if !rv.CanAddr() {
		cp := reflect.New(rv.Type()).Elem()
		cp.Set(rv)
		rv = cp
	}
	tp, err := c.typePlanFor(rv.Type())
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: cannot seal: %w", err)
	}
	plan := tp.plan
	to, ok := tp.to[recipient]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRecipient, truncate(recipient))
	}
	s, proj := to.s, to.proj
	if to.err != nil {
		return nil, fmt.Errorf("fieldcrypt: %w", to.err)
	}
	// The default validator has nothing to check in a type without
	// validate tags, nor in its fields without them (valPlan); a custom
	// one may have (struct-level rules), so it sees everything.
	var filter validator.FilterFunc
	run := true
	if vp := tp.val; vp != nil {
		run, filter = !vp.free, vp.skips
		if run && vp.quick != nil && vp.quick.ok(rv) {
			run = false // validator would accept it (see quickCheck)
		}
	}
	if run {
		if err := validate(c.validate, rv.Addr().Interface(), filter, false); err != nil {
			return nil, err
		}
	}
	msg, err := s.Begin(plan.Name)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: %w", err)
	}
	e := bufPool.Get().(*encoder)
	*e = encoder{msg: msg, path: e.path[:0], spath: e.spath[:0], scratch: e.scratch[:0], out: e.out[:0], maxDepth: c.maxDepth}
	data, err := e.appendStruct(e.out, proj, rv, false)
	var out []byte
	if err == nil {
		// The encoder writes well-formed JSON only: no second structural
		// scan (its UTF-8 is still checked; see internal/sealhook).
		out, err = sealhook.FinishEncoded(msg, data) // copies data
	}
	e.msg = nil
	if cap(data) <= 64<<10 { // do not pin large buffers
		e.out = data[:0]
		bufPool.Put(e)
	}
	if err == nil {
		return out, nil
	}
	if ee := encodeError(""); errors.As(err, &ee) {
		return nil, err
	}
	return nil, fmt.Errorf("fieldcrypt: cannot seal: %w", err)
}

// Open opens an envelope addressed to this service into dst, a non-nil
// pointer to a struct of the envelope's type, and returns its verified
// header.
//
// The envelope is authenticated as a whole before anything is decoded.
// Its type name must be the destination's plan name (else a
// [*MismatchError]). The data is then read strictly into a fresh value:
// only fields shared with this service, sensitive ones as markers of the
// right mode, each decrypted at its place; then the validate tags of the
// fields received are checked. Only when all of this succeeds is *dst
// replaced; on any error dst is unchanged.
//
// Every refusal of the data matches envelope.ErrCannotOpen and does not say
// which field failed; a retired key is also an *envelope.KeyRetiredError.
//
// With an HPKE recipient anyone holding this service's public keyset can
// seal an envelope naming any sender: compare the returned header's Sender
// with the caller the transport authenticated, or use [Codec.OpenFrom].
func (c *Codec) Open(data []byte, dst any) (envelope.Header, error) {
	return c.open(data, dst, "")
}

// OpenFrom is [Codec.Open] that also requires the envelope's sender to be
// sender (the caller the transport authenticated); another sender is a
// [*MismatchError], matching envelope.ErrCannotOpen.
func (c *Codec) OpenFrom(sender string, data []byte, dst any) (envelope.Header, error) {
	if sender == "" {
		return envelope.Header{}, errors.New("fieldcrypt: OpenFrom needs a sender")
	}
	return c.open(data, dst, sender)
}

func (c *Codec) open(data []byte, dst any, sender string) (envelope.Header, error) {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return envelope.Header{}, &InvalidValueError{Op: "open", Type: reflect.TypeOf(dst)}
	}
	t := rv.Type().Elem()
	tp, err := c.typePlanFor(t)
	if err != nil {
		return envelope.Header{}, fmt.Errorf("fieldcrypt: cannot open into %v: %w", t, err)
	}
	if c.opener == nil {
		return envelope.Header{}, ErrNoIdentity
	}
	plan, proj := tp.plan, tp.self
	if proj == nil {
		if proj, err = plan.Project(c.self); err != nil {
			return envelope.Header{}, fmt.Errorf("fieldcrypt: %w", err)
		}
	}
	scr := openPool.Get().(*openScratch)
	defer scr.release()
	if err := sealhook.OpenInto(c.opener, &scr.opened, data, &scr.buf); err != nil {
		return envelope.Header{}, err
	}
	opened := &scr.opened
	h := opened.Header
	// OpenInto left the data's grammar to the decoder: on any refusal,
	// data that is not one JSON object is the *ParseError Open would have
	// given, before anything else.
	refuse := func(err error) (envelope.Header, error) {
		if perr := sealhook.DataParseError(data, opened.Data); perr != nil {
			return envelope.Header{}, perr
		}
		return envelope.Header{}, err
	}
	if sender != "" && h.Sender != sender {
		return refuse(&MismatchError{Member: "snd", Want: sender, Got: h.Sender})
	}
	if h.Type != plan.Name {
		return refuse(&MismatchError{Member: "typ", Want: plan.Name, Got: h.Type})
	}
	fresh := reflect.New(t)
	d := decoder{data: opened.Data, opened: opened, maxDepth: c.maxDepth}
	d.ws()
	if d.pos >= len(d.data) {
		return refuse(envelope.ErrCannotOpen)
	}
	err = d.object(proj, fresh.Elem(), false)
	if err == nil {
		d.ws()
		if d.pos != len(d.data) {
			err = errBadData
		}
	}
	if err != nil {
		if errors.Is(err, envelope.ErrCannotOpen) {
			return refuse(err) // a *KeyRetiredError stays one
		}
		return refuse(envelope.ErrCannotOpen)
	}
	chk := tp.chk
	if proj != tp.self {
		chk = c.check(plan, proj)
	}
	if !chk.skip && (chk.quick == nil || !chk.quick.ok(fresh.Elem())) {
		if err := validate(c.validate, fresh.Interface(), chk.filter, true); err != nil {
			return envelope.Header{}, err
		}
	}
	rv.Elem().Set(fresh.Elem())
	return h, nil
}

// openScratch is what one Open borrows: the opened envelope, whose Data is
// the verified copy of the envelope's data held in buf. Nothing decoded
// aliases buf (see internal/sealhook.OpenInto), so both serve the next Open.
type openScratch struct {
	opened envelope.Opened
	buf    []byte
}

var openPool = sync.Pool{New: func() any { return new(openScratch) }}

// maxPooledOpen bounds the buffers kept for later Opens.
const maxPooledOpen = 64 << 10

func (s *openScratch) release() {
	s.opened = envelope.Opened{}
	if cap(s.buf) <= maxPooledOpen {
		openPool.Put(s)
	}
}

// check returns how Open validates values of proj: only the fields the
// recipient received (the filter), unless the default validator is in use
// and can find nothing to check at all, or nothing outside them.
func (c *Codec) check(plan *schema.Plan, proj *schema.Projection) *openCheck {
	if v, ok := c.checks.Load(proj); ok {
		return v.(*openCheck)
	}
	chk := &openCheck{}
	if !c.builtin {
		chk.filter = buildFilter(plan.Type.Name(), proj)
	} else if vp := valPlanFor(plan.Type); vp.free {
		chk.skip = true
	} else {
		// The fields with nothing to check are skipped, and those the
		// recipient did not receive unless skipping them cannot matter.
		var recv validator.FilterFunc
		if filterMatters(plan.Type, buildVnode(proj, map[*schema.Projection]*vnode{}), map[filterVisit]bool{}) {
			recv = buildFilter(plan.Type.Name(), proj)
		}
		if vp.quick != nil {
			chk.quick = vp.quick.forProjection(proj)
		}
		switch {
		case recv != nil && vp.skip != nil:
			chk.filter = func(ns []byte) bool { return vp.skip.has(ns) || recv(ns) }
		case recv != nil:
			chk.filter = recv
		case vp.skip != nil:
			chk.filter = vp.skips
		}
	}
	v, _ := c.checks.LoadOrStore(proj, chk)
	return v.(*openCheck)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
