package registry

// cprTable is the citizens' index: an open-addressing hash table of single
// uint64 words, key and value packed together, so 5 million citizens cost
// 8 bytes per slot (64 MiB at 5M: 2^23 slots, load 0.6) and a lookup
// touches one cache line and allocates nothing.
//
// word = (cpr+1) << valueBits | value. A CPR is below 10^10 < 2^34, so the
// key part fits in 40 bits and never is 0; word 0 is an empty slot and a
// word with key part 0 and value tomb is a deleted one.
//
// Not safe for concurrent use: the View guards it with its RWMutex.
type cprTable struct {
	slots []uint64
	mask  uint64
	used  int // live entries
	tombs int // deleted slots
}

const (
	valueBits = 24
	valueMask = 1<<valueBits - 1
	tomb      = 1 // key part 0, value 1
)

func (t *cprTable) hash(key uint64) uint64 {
	h := key * 0x9E3779B97F4A7C15
	return (h ^ h>>29) & t.mask
}

// get returns the value stored for cpr.
func (t *cprTable) get(cpr uint64) (uint32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	key := cpr + 1
	for i := t.hash(key); ; i = (i + 1) & t.mask {
		w := t.slots[i]
		if w == 0 {
			return 0, false
		}
		if w>>valueBits == key {
			return uint32(w & valueMask), true
		}
	}
}

// put stores v (24 bits) for cpr.
func (t *cprTable) put(cpr uint64, v uint32) {
	if (t.used+t.tombs+1)*8 > len(t.slots)*5 { // load above 0.625
		t.grow()
	}
	key := cpr + 1
	w := key<<valueBits | uint64(v&valueMask)
	free := -1
	for i := t.hash(key); ; i = (i + 1) & t.mask {
		s := t.slots[i]
		switch {
		case s == 0:
			if free >= 0 {
				t.slots[free] = w
				t.tombs--
			} else {
				t.slots[i] = w
			}
			t.used++
			return
		case s == tomb:
			if free < 0 {
				free = int(i)
			}
		case s>>valueBits == key:
			t.slots[i] = w
			return
		}
	}
}

// del removes cpr.
func (t *cprTable) del(cpr uint64) {
	if len(t.slots) == 0 {
		return
	}
	key := cpr + 1
	for i := t.hash(key); ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if s>>valueBits == key {
			t.slots[i] = tomb
			t.used--
			t.tombs++
			return
		}
	}
}

// reserve sizes the table for n entries at once (a known load).
func (t *cprTable) reserve(n int) {
	size := 1024
	for size*5 < n*8 {
		size *= 2
	}
	if size > len(t.slots) {
		t.rehash(size)
	}
}

func (t *cprTable) grow() {
	size := max(1024, len(t.slots))
	if (t.used+1)*16 > size*5 { // live load above 0.3125: double; else tombstones fill it: rehash in place
		size *= 2
	}
	t.rehash(size)
}

func (t *cprTable) rehash(size int) {
	old := t.slots
	t.slots = make([]uint64, size)
	t.mask = uint64(size - 1)
	t.used, t.tombs = 0, 0
	for _, w := range old {
		if w != 0 && w != tomb {
			key := w >> valueBits
			for i := t.hash(key); ; i = (i + 1) & t.mask {
				if t.slots[i] == 0 {
					t.slots[i] = w
					break
				}
			}
			t.used++
		}
	}
}

func (t *cprTable) len() int { return t.used }

// bytes is the table's memory.
func (t *cprTable) bytes() int { return 8 * len(t.slots) }
