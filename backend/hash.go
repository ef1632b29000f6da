package backend

// FNV-1a 64 parameters, from the FNV specification.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Key hashes s into a key for Cluster.PickKey. The result depends only on
// the bytes of s: it is the same in every worker, every process and after
// a restart, unlike hash/maphash, whose seed is random, so every worker of
// every proxy instance sends a given client or session to the same
// backend. It does not allocate.
//
// It is FNV-1a 64 followed by the MurmurHash3 64-bit finalizer: FNV alone
// is fast but leaves similar strings ("key-1", "key-2") with similar high
// bits, and the finalizer spreads every input bit over the whole word.
// Key is not a cryptographic hash; keys chosen by a hostile client can be
// made to collide, which can only concentrate that client's own traffic.
func Key(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// KeyBytes is Key for a byte slice: KeyBytes(b) == Key(string(b)).
func KeyBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// mix is the MurmurHash3 fmix64 finalizer, a bijection in which each input
// bit affects every output bit. The hashing pickers pass keys through it
// once more, so that a caller who uses raw integers (user IDs 1, 2, 3) as
// keys still gets them spread over the whole ring or table.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9a62ac9ca53
	h ^= h >> 33
	return h
}
