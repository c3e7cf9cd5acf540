package envelope

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
)

// RewrapConfig configures a [Rewrapper]: the keys of one service, which
// re-encrypts the envelopes addressed to it under its current primary keys.
type RewrapConfig struct {
	// Self is the service the envelopes are addressed to; others are
	// refused. Required.
	Self string
	// Identity opens the envelopes: every enabled key of it does, so an
	// envelope under an old key that is still enabled opens. Required.
	Identity Identity
	// To wraps the new data keys: Self's own recipient, such as
	// NewHPKERecipient(private.Public()) (its primary key) or
	// NewAEADKeysetRecipient on Self's AEAD keyset. Required.
	To Recipient
	// Deterministic is Self's AES-SIV keyset: deterministic markers open
	// with any enabled key and are re-encrypted under its primary. nil: an
	// envelope holding a deterministic marker is refused.
	Deterministic *keyset.Handle
	// Reuse bounds the reuse of one new wrapped data key, per sender, as
	// for a [Sealer]; the zero value reuses one for up to 1000 envelopes or
	// 5 minutes.
	Reuse Reuse
	// Cache bounds the cache of unwrapped old data keys, as for an
	// [Opener].
	Cache Cache
	// MaxSize is the largest envelope accepted; 0: [DefaultMaxSize].
	MaxSize int
	// Clock is for the reuse and cache bounds only: a rewrapped envelope
	// keeps its issued-at time. nil: time.Now.
	Clock func() time.Time
	// Rand gives the new data keys; nil: crypto/rand.
	Rand io.Reader
}

// RewrapInfo describes one rewrapped envelope by identifiers only, never key
// material.
type RewrapInfo struct {
	// From is the algorithm and key id that opened the envelope (Wrapped is
	// nil); To is the new one.
	From, To KeyInfo
	// Random and Deterministic count the markers re-encrypted.
	Random, Deterministic int
	// DeterministicKeys are the Tink key ids (decimal) of the deterministic
	// keys that opened markers, each once, in order of first use.
	DeterministicKeys []string
}

// Rewrapper re-encrypts stored envelopes under the current primary keys of
// their recipient, for key rotation: after it has run over every stored
// envelope, the old keys can be disabled. It is safe for concurrent use.
//
// [Rewrapper.Rewrap] opens an envelope (tag verified first), keeps its id,
// sender, recipient, type and issued-at time, wraps a new data key for
// RewrapConfig.To, re-encrypts every random marker under it (bound to the
// same path) and every deterministic marker under the primary key of
// RewrapConfig.Deterministic (with the same associated data), and computes
// a new tag. Everything else in "data" is kept byte for byte.
//
// It needs no schema: every object of "data" that has a "$enc" member is
// taken for a marker and must open, so an envelope whose clear data holds
// such an object (possible only inside a free-form value: a schema never
// lets a field be named "$enc") is refused rather than left half
// rewrapped. The schema path of a deterministic marker (its associated
// data) is found by trying the concrete path with every array index
// replaced by "*" and each combination of member names replaced by "*"
// (map keys), fewest first; the combinations that worked are tried first
// next time.
type Rewrapper struct {
	self   string
	opener *Opener
	cfg    RewrapConfig

	mu      sync.Mutex
	sealers map[string]*Sealer  // by sender
	masks   map[string][]uint64 // schema-path masks that worked, by type and path shape
}

const (
	maxRewrapSenders = 1024
	maxRewrapShapes  = 4096
	maxMasksPerShape = 4
	// maxStarredMembers bounds the member names of one path that may be
	// map keys: 2^12 candidate schema paths at most.
	maxStarredMembers = 12
)

// NewRewrapper checks cfg and returns a Rewrapper.
func NewRewrapper(cfg RewrapConfig) (*Rewrapper, error) {
	if cfg.To == nil {
		return nil, errors.New("envelope: RewrapConfig.To is nil")
	}
	o, err := NewOpener(OpenerConfig{
		Self: cfg.Self, Identity: cfg.Identity, Deterministic: cfg.Deterministic,
		Cache: cfg.Cache, MaxSize: cfg.MaxSize, Clock: cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	// Check the sealing side once, with a placeholder sender.
	if _, err := NewSealer(SealerConfig{Sender: cfg.Self, Recipient: cfg.Self, To: cfg.To,
		Deterministic: cfg.Deterministic, Reuse: cfg.Reuse}); err != nil {
		return nil, err
	}
	return &Rewrapper{self: cfg.Self, opener: o, cfg: cfg,
		sealers: map[string]*Sealer{}, masks: map[string][]uint64{}}, nil
}

func (r *Rewrapper) sealer(sender string) (*Sealer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sealers[sender]; ok {
		return s, nil
	}
	s, err := NewSealer(SealerConfig{
		Sender: sender, Recipient: r.self, To: r.cfg.To, Deterministic: r.cfg.Deterministic,
		Reuse: r.cfg.Reuse, Clock: r.cfg.Clock, Rand: r.cfg.Rand,
	})
	if err != nil {
		return nil, err
	}
	if len(r.sealers) >= maxRewrapSenders {
		clear(r.sealers)
	}
	r.sealers[sender] = s
	return s, nil
}

// Rewrap returns envelope re-encrypted under the current primary keys, and
// what it did. It refuses what an [Opener] refuses ([ErrCannotOpen],
// [*ParseError], [*KeyRetiredError] for a disabled key), and a marker that
// does not open; the input is never modified.
func (r *Rewrapper) Rewrap(envelope []byte) ([]byte, RewrapInfo, error) {
	var info RewrapInfo
	if r == nil || r.opener == nil {
		return nil, info, errNotConstructed
	}
	opened, err := r.opener.Open(envelope)
	if err != nil {
		return nil, info, err
	}
	h := opened.Header
	info.From = KeyInfo{Alg: h.Key.Alg, KeyID: h.Key.KeyID}
	s, err := r.sealer(h.Sender)
	if err != nil {
		return nil, info, err
	}
	k, _, err := s.keyAndID(s.clock(), h.IssuedAt)
	if err != nil {
		return nil, info, err
	}
	h.Key = k.info
	msg := &Message{hdr: h, aead: k.aead, det: s.det}
	msg.rawHdr = appendHeader(make([]byte, 0, 192+len(h.Type)+len(h.Key.KeyID)+len(h.Key.Wrapped)*4/3), &msg.hdr)
	msg.fieldAD = fieldADPrefix(&msg.hdr)
	info.To = KeyInfo{Alg: k.info.Alg, KeyID: k.info.KeyID}

	w := &rewalker{r: r, opened: opened, msg: msg, info: &info, src: opened.Data,
		out: make([]byte, 0, len(opened.Data)+len(opened.Data)/8)}
	w.s = scanner{b: opened.Data}
	if err := w.value(1); err != nil {
		return nil, info, err
	}
	w.out = append(w.out, w.src[w.last:]...)
	out, err := msg.Finish(w.out)
	if err != nil {
		return nil, info, err
	}
	return out, info, nil
}

// rewalker copies "data" and replaces each marker by its re-encryption.
type rewalker struct {
	r      *Rewrapper
	opened *Opened
	msg    *Message
	info   *RewrapInfo
	s      scanner
	src    []byte
	out    []byte
	last   int // src[last:] is not yet in out

	path []byte    // JSON Pointer of the current value
	segs []pathSeg // one per reference token of path
}

type pathSeg struct {
	start int  // offset of the token's '/' in path
	index bool // an array index (always "*" in a schema path)
}

func (w *rewalker) push(tok []byte, index bool) {
	w.segs = append(w.segs, pathSeg{start: len(w.path), index: index})
	w.path = append(w.path, '/')
	w.path = append(w.path, tok...)
}

func (w *rewalker) pop() {
	n := len(w.segs) - 1
	w.path = w.path[:w.segs[n].start]
	w.segs = w.segs[:n]
}

var errMarkerForm = parseErr("malformed marker")

func (w *rewalker) value(depth int) error {
	s := &w.s
	s.ws()
	switch s.next() {
	case '{':
		if depth > maxDepth {
			return parseErr("nesting too deep")
		}
		start := s.i
		s.i++
		s.ws()
		var enc string
		isMarker, sawContainer := false, false
		if s.next() != '}' {
			for {
				name, err := s.str()
				if err != nil {
					return err
				}
				s.ws()
				if err := s.consume(':', "expected ':'"); err != nil {
					return err
				}
				s.ws()
				if name == "$enc" {
					if isMarker || sawContainer {
						return errMarkerForm
					}
					isMarker = true
					if enc, err = s.str(); err != nil {
						return errMarkerForm
					}
				} else if c := s.next(); c == '{' || c == '[' {
					if isMarker {
						return errMarkerForm
					}
					sawContainer = true
					w.push(appendPointerToken(nil, name), false)
					if err := w.value(depth + 1); err != nil {
						return err
					}
					w.pop()
				} else if err := s.value(depth + 1); err != nil {
					return err
				}
				s.ws()
				if s.next() == ',' {
					s.i++
					s.ws()
					continue
				}
				if err := s.consume('}', "expected ',' or '}'"); err != nil {
					return err
				}
				break
			}
		} else {
			s.i++
		}
		if isMarker {
			return w.marker(start, s.i, enc)
		}
		return nil
	case '[':
		if depth > maxDepth {
			return parseErr("nesting too deep")
		}
		s.i++
		s.ws()
		if s.next() == ']' {
			s.i++
			return nil
		}
		var num [20]byte
		for i := 0; ; i++ {
			w.push(strconv.AppendInt(num[:0], int64(i), 10), true)
			if err := w.value(depth + 1); err != nil {
				return err
			}
			w.pop()
			s.ws()
			if s.next() == ',' {
				s.i++
				continue
			}
			return s.consume(']', "expected ',' or ']'")
		}
	default:
		return s.value(depth)
	}
}

// appendPointerToken appends the RFC 6901 escaping of a member name to dst.
func appendPointerToken(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '~':
			dst = append(dst, '~', '0')
		case '/':
			dst = append(dst, '~', '1')
		default:
			dst = append(dst, name[i])
		}
	}
	return dst
}

// marker re-encrypts the marker at src[start:end].
func (w *rewalker) marker(start, end int, enc string) error {
	if len(w.segs) == 0 {
		return errMarkerForm // "data" itself is never a marker
	}
	marker := w.src[start:end]
	var mode Mode
	switch enc {
	case Random.String():
		mode = Random
	case Deterministic.String():
		mode = Deterministic
	default:
		return ErrCannotOpen
	}
	w.out = append(w.out, w.src[w.last:start]...)
	w.last = end
	var err error
	if mode == Random {
		var pt []byte
		if pt, err = w.opened.OpenField(marker, Random, w.path, w.path); err != nil {
			return err
		}
		w.out, err = w.msg.AppendField(w.out, Random, w.path, w.path, pt)
		clear(pt)
		w.info.Random++
		return err
	}
	pt, schemaPath, err := w.openDeterministic(marker)
	if err != nil {
		return err
	}
	w.out, err = w.msg.AppendField(w.out, Deterministic, w.path, schemaPath, pt)
	clear(pt)
	if err != nil {
		return err
	}
	w.info.Deterministic++
	if ct, err := parseMarker(marker, Deterministic); err == nil && len(ct) >= 5 {
		kid := formatTinkKeyID(binary.BigEndian.Uint32(ct[1:5]))
		seen := false
		for _, k := range w.info.DeterministicKeys {
			seen = seen || k == kid
		}
		if !seen {
			w.info.DeterministicKeys = append(w.info.DeterministicKeys, kid)
		}
	}
	return nil
}

// openDeterministic finds the schema path the marker was sealed with (its
// associated data) and returns the plaintext and that path.
func (w *rewalker) openDeterministic(marker []byte) ([]byte, []byte, error) {
	var members []int // indices in segs of member-name tokens
	shape := make([]byte, 0, len(w.msg.hdr.Type)+1+len(w.segs))
	shape = append(append(shape, w.msg.hdr.Type...), 0)
	for i, sg := range w.segs {
		if sg.index {
			shape = append(shape, 'i')
		} else {
			shape = append(shape, 'm')
			members = append(members, i)
		}
	}
	key := string(shape)
	try := func(mask uint64) ([]byte, []byte, error) {
		sp := w.schemaPath(members, mask)
		pt, err := w.opened.OpenField(marker, Deterministic, w.path, sp)
		return pt, sp, err
	}
	w.r.mu.Lock()
	known := append([]uint64(nil), w.r.masks[key]...)
	w.r.mu.Unlock()
	for _, m := range known {
		pt, sp, err := try(m)
		if err == nil {
			return pt, sp, nil
		}
		if errors.Is(err, ErrKeyRetired) || isParseError(err) {
			return nil, nil, err
		}
	}
	n := len(members)
	maxStars := n
	if n > maxStarredMembers {
		maxStars = 2
	}
	for stars := 0; stars <= maxStars; stars++ {
		for mask := uint64(0); mask < 1<<min(n, 63); mask++ {
			if bits.OnesCount64(mask) != stars || containsMask(known, mask) {
				continue
			}
			pt, sp, err := try(mask)
			if err == nil {
				w.r.remember(key, mask)
				return pt, sp, nil
			}
			if errors.Is(err, ErrKeyRetired) || isParseError(err) {
				return nil, nil, err
			}
		}
	}
	return nil, nil, ErrCannotOpen
}

func isParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}

func containsMask(ms []uint64, m uint64) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func (r *Rewrapper) remember(key string, mask uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.masks) >= maxRewrapShapes {
		clear(r.masks)
	}
	ms := append([]uint64{mask}, r.masks[key]...)
	if len(ms) > maxMasksPerShape {
		ms = ms[:maxMasksPerShape]
	}
	r.masks[key] = ms
}

// schemaPath is the current path with every array index, and the member
// tokens selected by mask (bit j: members[j]), replaced by "*".
func (w *rewalker) schemaPath(members []int, mask uint64) []byte {
	out := make([]byte, 0, len(w.path))
	j := 0
	for i, sg := range w.segs {
		end := len(w.path)
		if i+1 < len(w.segs) {
			end = w.segs[i+1].start
		}
		star := sg.index
		if !sg.index {
			star = j < 64 && mask&(1<<j) != 0
			j++
		}
		if star {
			out = append(out, '/', '*')
		} else {
			out = append(out, w.path[sg.start:end]...)
		}
	}
	return out
}
