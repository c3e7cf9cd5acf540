package transport

import "testing"

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
