//! Key placement: mcrouter's default `Ch3` (furc_hash, a consistent hash over an index) and its
//! Rendezvous (highest-random-weight) hash over per-server tags, both as mcrouter's sources
//! define them (lib/fbi/hash.c, lib/RendezvousHashFunc.cpp).

const MULT: u64 = 0xc6a4a7935bd1e995;
const SHIFT: u32 = 47;
/// furc_hash's MurmurHash64A seed.
const FURC_SEED: u64 = 4193360111;
/// Bit-index stride between decision-tree tries; pools up to 2^23 servers.
const STRIDE: u32 = 23;
const TRIES: u32 = 32;

fn mix(k: u64) -> u64 {
    let mut k = k.wrapping_mul(MULT);
    k ^= k >> SHIFT;
    k.wrapping_mul(MULT)
}

fn finish(mut h: u64) -> u64 {
    h ^= h >> SHIFT;
    h = h.wrapping_mul(MULT);
    h ^ (h >> SHIFT)
}

/// MurmurHash64A (little-endian words).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ (data.len() as u64).wrapping_mul(MULT);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        h = (h ^ mix(word)).wrapping_mul(MULT);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut last = 0u64;
        for (i, b) in tail.iter().enumerate() {
            last |= u64::from(*b) << (8 * i);
        }
        h = (h ^ last).wrapping_mul(MULT);
    }
    finish(h)
}

/// A pseudo-random bit stream derived from a key: word 0 is the key's hash, word n the
/// rehash of word n-1 (as an 8-byte key).
struct Bits<'a> {
    key: &'a [u8],
    words: Vec<u64>,
}

impl Bits<'_> {
    fn bit(&mut self, index: u32) -> bool {
        let word = (index >> 6) as usize;
        while self.words.len() <= word {
            let next = match self.words.last() {
                None => murmur64a(self.key, FURC_SEED),
                Some(prev) => {
                    finish((FURC_SEED ^ 8u64.wrapping_mul(MULT) ^ mix(*prev)).wrapping_mul(MULT))
                }
            };
            self.words.push(next);
        }
        (self.words[word] >> (index & 63)) & 1 == 1
    }
}

/// Ch3: the index in `[0, n)` a key maps to. Depends on the key and `n` only.
pub fn furc_hash(key: &[u8], n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    let mut bits = Bits {
        key,
        words: Vec::new(),
    };
    // Depth: the number of bits needed to write n-1.
    let mut depth = 32 - (n - 1).leading_zeros();
    let mut at = depth;
    for _ in 0..TRIES {
        while !bits.bit(at) {
            depth -= 1;
            if depth == 0 {
                return 0;
            }
            at = depth;
        }
        at += STRIDE;
        let mut candidate = 1u32;
        for _ in 1..depth {
            candidate = (candidate << 1) | u32::from(bits.bit(at));
            at += STRIDE;
        }
        if candidate < n {
            return candidate;
        }
    }
    0
}

/// RendezvousHashFunc's seeds: of the tags, and of the key.
const TAG_SEED: u64 = 4193360111;
const KEY_SEED: u64 = 2718281828;

/// CityHash's Hash128to64 of (upper = tag hash, lower = key hash): the tag's score.
fn score(tag: u64, key: u64) -> u64 {
    const K: u64 = 0x9ddfea08eb382d69;
    let mut a = (key ^ tag).wrapping_mul(K);
    a ^= a >> 47;
    let mut b = (tag ^ a).wrapping_mul(K);
    b ^= b >> 47;
    b.wrapping_mul(K)
}

/// Rendezvous as mcrouter's RendezvousHashFunc: the index of the tag scoring highest for
/// `key`, the first on a tie.
pub fn rendezvous(key: &[u8], tags: &[String]) -> usize {
    let key_hash = murmur64a(key, KEY_SEED);
    let mut best: Option<(usize, u64)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let s = score(murmur64a(tag.as_bytes(), TAG_SEED), key_hash);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn furc_hash_matches_mcrouters_published_values() {
        assert_eq!(furc_hash(b"sample", 100), 97);
        assert_eq!(furc_hash(b"", 100), 72);
        assert_eq!(furc_hash(b"", 1 << 23), 6173600);
    }

    #[test]
    fn growing_a_pool_by_one_moves_about_one_share() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("key:{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| furc_hash(k.as_bytes(), 10) != furc_hash(k.as_bytes(), 11))
            .count();
        let share = moved as f64 / keys.len() as f64;
        assert!((share - 1.0 / 11.0).abs() < 0.01, "moved {share}");
        // Every moved key went to the new server.
        assert!(keys.iter().all(|k| {
            let (a, b) = (furc_hash(k.as_bytes(), 10), furc_hash(k.as_bytes(), 11));
            a == b || b == 10
        }));
    }

    #[test]
    fn rendezvous_ignores_order() {
        let tags: Vec<String> = (0..5).map(|i| format!("mc-{i}:11211")).collect();
        let mut reversed = tags.clone();
        reversed.reverse();
        for i in 0..1000 {
            let key = format!("k{i}");
            assert_eq!(
                tags[rendezvous(key.as_bytes(), &tags)],
                reversed[rendezvous(key.as_bytes(), &reversed)]
            );
        }
    }
}
