//! Which server of a pool mcrouter sends a key to, and what share of keys a change of the pool
//! sends elsewhere (pure).
//!
//! mcrouter's two hash functions that depend on the server list, as mcrouter's
//! `lib/fbi/hash.c`, `lib/Ch3HashFunc.h` and `lib/RendezvousHashFunc.cpp` define them (README,
//! "Key movement"):
//! - **Ch3**, the default: `furc_hash(key, n)` picks an *index* into the server list, from a
//!   stream of bits drawn from MurmurHash64A of the key and its re-hashes.
//! - **Rendezvous**: every server has a tag; a key goes to the server whose tag scores highest
//!   against it.
//!
//! This implementation is mcw's own; the mcrouter stand-in keeps an independent one, and the
//! end-to-end tests compare mcw's predictions with keys actually moved between real memcached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// How many sample keys a remap share is measured on: with 10,000 the share is within one
/// percentage point of the whole key space's 19 times out of 20 (1.96 · √(¼ / 10,000) ≈ 0.0098).
pub const SAMPLE_KEYS: usize = 10_000;

/// mcrouter's seed for MurmurHash64A in furc_hash, and for a Rendezvous tag.
const SEED: u64 = 4_193_360_111;
/// mcrouter's seed for a key's MurmurHash64A in Rendezvous.
const KEY_SEED: u64 = 2_718_281_828;
/// furc_hash's bit-index stride per level and its number of attempts before it settles for 0.
const FURC_SHIFT: u32 = 23;
const FURC_TRIES: u32 = 32;

/// MurmurHash64A (Austin Appleby's MurmurHash2, 64-bit), little-endian, as mcrouter calls it.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    let mix = |mut k: u64| {
        k = k.wrapping_mul(M);
        k ^= k >> 47;
        k.wrapping_mul(M)
    };
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let k = u64::from_le_bytes(block.try_into().expect("chunks of 8"));
        h = (h ^ mix(k)).wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(last)).wrapping_mul(M);
    }
    h ^= h >> 47;
    h = h.wrapping_mul(M);
    h ^ (h >> 47)
}

/// The bits furc_hash decides with: bit `i` is bit `i % 64` of the `i / 64`-th word, where word 0
/// is the key's MurmurHash64A and each next word re-hashes the previous one's 8 bytes.
struct BitStream<'a> {
    key: &'a [u8],
    words: Vec<u64>,
}

impl BitStream<'_> {
    fn bit(&mut self, i: u32) -> bool {
        let word = (i / 64) as usize;
        while self.words.len() <= word {
            let next = match self.words.last() {
                None => murmur64a(self.key, SEED),
                Some(prev) => murmur64a(&prev.to_le_bytes(), SEED),
            };
            self.words.push(next);
        }
        (self.words[word] >> (i % 64)) & 1 == 1
    }
}

/// mcrouter's `furc_hash`: the index in `0..servers` a key maps to under Ch3.
pub fn furc(key: &[u8], servers: u32) -> u32 {
    if servers <= 1 {
        return 0;
    }
    let mut bits = BitStream {
        key,
        words: Vec::with_capacity(16),
    };
    // Depth of the decision tree: the smallest d with 2^d >= servers.
    let mut depth = 64 - u64::from(servers - 1).leading_zeros();
    let mut at = depth;
    for _ in 0..FURC_TRIES {
        // Descend until a level says "the top half": that level's subtree holds the key.
        while !bits.bit(at) {
            depth -= 1;
            if depth == 0 {
                return 0;
            }
            at = depth;
        }
        at += FURC_SHIFT;
        let mut index = 1u32;
        for _ in 1..depth {
            index = (index << 1) | u32::from(bits.bit(at));
            at += FURC_SHIFT;
        }
        if index < servers {
            return index;
        }
    }
    0
}

/// The score of a tag for a key in mcrouter's Rendezvous: CityHash's Hash128to64 with the
/// tag's hash as the upper and the key's as the lower half.
fn rendezvous_score(tag_hash: u64, key_hash: u64) -> u64 {
    const K: u64 = 0x9ddf_ea08_eb38_2d69;
    let mut a = (key_hash ^ tag_hash).wrapping_mul(K);
    a ^= a >> 47;
    let mut b = (tag_hash ^ a).wrapping_mul(K);
    b ^= b >> 47;
    b.wrapping_mul(K)
}

/// The index of the server a key goes to under Rendezvous: the highest score, the first on a
/// tie. `None` for no tags.
pub fn rendezvous(key: &[u8], tags: &[String]) -> Option<usize> {
    let key_hash = murmur64a(key, KEY_SEED);
    best_score(tags.iter().map(|t| murmur64a(t.as_bytes(), SEED)), key_hash)
}

fn best_score(tag_hashes: impl Iterator<Item = u64>, key_hash: u64) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, tag_hash) in tag_hashes.enumerate() {
        let score = rendezvous_score(tag_hash, key_hash);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// How mcrouter hashes a pool, as far as mcw can model it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hashing {
    Ch3,
    Rendezvous {
        tags: Vec<String>,
    },
    /// A hash function mcw does not model, or a pool no hashing route uses: why.
    Unknown(String),
}

impl Hashing {
    /// The name mcrouter's config uses.
    pub fn name(&self) -> &str {
        match self {
            Hashing::Ch3 => "Ch3",
            Hashing::Rendezvous { .. } => "Rendezvous",
            Hashing::Unknown(_) => "unknown",
        }
    }
}

/// The fixed sample of keys shares are measured on.
fn sample() -> &'static [Vec<u8>] {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..SAMPLE_KEYS)
            .map(|i| format!("mcw:sample:{i}").into_bytes())
            .collect()
    })
}

/// Ch3 indices of every sample key for a pool of `n` servers. Pools of one size share them,
/// so a render of many same-sized pools computes them once.
fn ch3_indices(n: u32) -> Arc<[u32]> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Arc<[u32]>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().expect("never poisoned").get(&n) {
        return hit.clone();
    }
    let indices: Arc<[u32]> = sample().iter().map(|k| furc(k, n)).collect();
    let mut cache = cache.lock().expect("never poisoned");
    // Pool sizes are few; a template with very many distinct ones just recomputes.
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(n, indices.clone());
    indices
}

fn sample_key_hashes() -> &'static [u64] {
    static HASHES: OnceLock<Vec<u64>> = OnceLock::new();
    HASHES.get_or_init(|| sample().iter().map(|k| murmur64a(k, KEY_SEED)).collect())
}

/// For every sample key, the server (as an id in `ids`) it goes to; `None` when no server
/// takes it (an empty pool).
fn placement(
    servers: &[String],
    hashing: &Hashing,
    ids: &mut HashMap<String, u32>,
) -> Result<Vec<Option<u32>>, String> {
    let server_ids: Vec<u32> = servers
        .iter()
        .map(|s| {
            let fresh = ids.len() as u32;
            *ids.entry(s.clone()).or_insert(fresh)
        })
        .collect();
    if servers.is_empty() {
        return Ok(vec![None; SAMPLE_KEYS]);
    }
    match hashing {
        Hashing::Ch3 => {
            let n = u32::try_from(servers.len()).map_err(|_| "too many servers".to_string())?;
            Ok(ch3_indices(n)
                .iter()
                .map(|&i| Some(server_ids[i as usize]))
                .collect())
        }
        Hashing::Rendezvous { tags } => {
            if tags.len() != servers.len() {
                return Err(format!(
                    "Rendezvous with {} tags for {} servers",
                    tags.len(),
                    servers.len()
                ));
            }
            let tag_hashes: Vec<u64> = tags.iter().map(|t| murmur64a(t.as_bytes(), SEED)).collect();
            Ok(sample_key_hashes()
                .iter()
                .map(|&k| best_score(tag_hashes.iter().copied(), k).map(|i| server_ids[i]))
                .collect())
        }
        Hashing::Unknown(why) => Err(why.clone()),
    }
}

/// The share of keys a change sends to a different server: `moved` of `sample` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub moved: usize,
    pub sample: usize,
}

impl Share {
    pub fn ratio(self) -> f64 {
        self.moved as f64 / self.sample as f64
    }
}

/// `9.8%`, as the logs and `mcw diff` print it.
impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}%", self.ratio() * 100.0)
    }
}

/// One pool of a rendered config: its servers in order, and how mcrouter hashes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub servers: Vec<String>,
    pub hashing: Hashing,
}

/// A pool's servers; none for a pool that does not exist.
pub fn servers_of(pool: Option<&Pool>) -> &[String] {
    pool.map_or(&[], |p| &p.servers)
}

/// The share of keys that a pool's change (`before` → `after`; `None`: the pool did not or
/// does not exist) sends to a different server, measured on [`SAMPLE_KEYS`] keys. A key that
/// had no server before, or has none after, counts as remapped. `Err` says why mcw cannot
/// tell (a new or removed pool, a hash function it does not model).
pub fn remapped(before: Option<&Pool>, after: Option<&Pool>) -> Result<Share, String> {
    let (before, after) = match (before, after) {
        (Some(before), Some(after)) => (before, after),
        (None, _) => return Err("a new pool".into()),
        (_, None) => return Err("the pool is gone".into()),
    };
    let mut ids = HashMap::new();
    let old = placement(&before.servers, &before.hashing, &mut ids)?;
    let new = placement(&after.servers, &after.hashing, &mut ids)?;
    let moved = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a.is_none() || a != b)
        .count();
    Ok(Share {
        moved,
        sample: SAMPLE_KEYS,
    })
}

/// One pool's change: the pool before and after (`None`: it did not or does not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub before: Option<Pool>,
    pub after: Option<Pool>,
}

/// How many tag scores [`remapped`] may compute on the event loop: about 5 ms on the
/// development machine. A Rendezvous change of a larger pool is measured off the loop.
pub const INLINE_SCORES: usize = 2_000_000;

impl Change {
    /// The share of keys the change sends to another server ([`remapped`]).
    pub fn remapped(&self) -> Result<Share, String> {
        remapped(self.before.as_ref(), self.after.as_ref())
    }

    /// How many Rendezvous tag scores measuring it takes (Ch3 takes none worth counting: one
    /// hash per key, cached per pool size).
    pub fn scores(&self) -> usize {
        let rendezvous = |p: &Option<Pool>| match p {
            Some(Pool {
                hashing: Hashing::Rendezvous { tags },
                ..
            }) => tags.len(),
            _ => 0,
        };
        SAMPLE_KEYS * (rendezvous(&self.before) + rendezvous(&self.after))
    }
}

/// The servers `new` has more of than `old` (added), and fewer (removed), in list order; a
/// server listed twice counts twice.
pub fn added_removed<'a>(
    old: &'a [String],
    new: &'a [String],
) -> (Vec<&'a String>, Vec<&'a String>) {
    let mut count: HashMap<&String, i64> = HashMap::new();
    for s in old {
        *count.entry(s).or_default() -= 1;
    }
    for s in new {
        *count.entry(s).or_default() += 1;
    }
    let mut take = |s: &'a String, sign: i64| match count.get_mut(s) {
        Some(n) if *n * sign > 0 => {
            *n -= sign;
            true
        }
        _ => false,
    };
    let added = new.iter().filter(|s| take(s, 1)).collect();
    let removed = old.iter().filter(|s| take(s, -1)).collect();
    (added, removed)
}

/// Servers in both lists at a different position (their first listing): under Ch3, each one's
/// keys move with its slot.
pub fn moved(old: &[String], new: &[String]) -> Vec<(String, usize, usize)> {
    let mut first_new: HashMap<&String, usize> = HashMap::new();
    for (i, s) in new.iter().enumerate() {
        first_new.entry(s).or_insert(i);
    }
    let mut seen = std::collections::HashSet::new();
    old.iter()
        .enumerate()
        .filter(|(_, s)| seen.insert(*s))
        .filter_map(|(from, s)| {
            let to = *first_new.get(s)?;
            (to != from).then(|| (s.clone(), from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn furc_matches_mcrouters_published_values() {
        // mcrouter/lib/test/Ch3HashTest.cpp.
        assert_eq!(furc(b"sample", 100), 97);
        assert_eq!(furc(b"", 100), 72);
        assert_eq!(furc(b"", 1 << 23), 6_173_600);
        assert_eq!(furc(b"anything", 1), 0);
        assert_eq!(furc(b"anything", 0), 0);
    }

    #[test]
    fn furc_spreads_keys_evenly() {
        let mut counts = [0usize; 7];
        for k in sample() {
            counts[furc(k, 7) as usize] += 1;
        }
        for c in counts {
            assert!((1300..1560).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn rendezvous_picks_the_highest_score_and_ignores_order() {
        let tags: Vec<String> = (0..5).map(|i| format!("mc-{i}.mc:11211")).collect();
        let mut reversed = tags.clone();
        reversed.reverse();
        for k in sample().iter().take(500) {
            let a = rendezvous(k, &tags).unwrap();
            let b = rendezvous(k, &reversed).unwrap();
            assert_eq!(tags[a], reversed[b]);
        }
        assert_eq!(rendezvous(b"k", &[]), None);
    }

    fn pool(servers: &[String], hashing: Hashing) -> Pool {
        Pool {
            servers: servers.to_vec(),
            hashing,
        }
    }

    fn ch3(before: &[String], after: &[String]) -> f64 {
        let (before, after) = (pool(before, Hashing::Ch3), pool(after, Hashing::Ch3));
        remapped(Some(&before), Some(&after)).unwrap().ratio()
    }

    fn near(share: f64, expected: f64) {
        assert!(
            (share - expected).abs() <= 0.01,
            "{share} is not within a point of {expected}"
        );
    }

    #[test]
    fn ch3_appending_a_server_moves_one_in_n_plus_one() {
        let old = servers(10);
        near(ch3(&old, &servers(11)), 1.0 / 11.0);
    }

    #[test]
    fn ch3_replacing_one_slot_moves_one_in_n() {
        let old = servers(10);
        let mut new = old.clone();
        new[3] = "10.0.1.3:11211".into();
        near(ch3(&old, &new), 1.0 / 10.0);
    }

    #[test]
    fn ch3_removing_a_middle_server_moves_most_keys() {
        let old = servers(10);
        let mut new = old.clone();
        new.remove(2);
        assert!(ch3(&old, &new) > 0.5, "{}", ch3(&old, &new));
        // Removing the last one moves only its own keys.
        near(ch3(&old, &old[..9]), 1.0 / 10.0);
    }

    #[test]
    fn rendezvous_removing_any_server_moves_only_its_keys() {
        let old = servers(10);
        let mut new = old.clone();
        new.remove(2);
        let tagged = |servers: &[String]| {
            let tags = servers.to_vec();
            pool(servers, Hashing::Rendezvous { tags })
        };
        let share = remapped(Some(&tagged(&old)), Some(&tagged(&new))).unwrap();
        near(share.ratio(), 1.0 / 10.0);
    }

    #[test]
    fn nothing_changed_moves_nothing_and_empty_pools_move_everything() {
        let old = servers(4);
        assert_eq!(ch3(&old, &old), 0.0);
        assert_eq!(ch3(&old, &[]), 1.0);
        assert_eq!(ch3(&[], &old), 1.0);
        // A server listed twice: keys of either slot stay on it.
        let twice = vec![old[0].clone(), old[0].clone()];
        let once_more = vec![old[0].clone(), old[0].clone(), old[0].clone()];
        assert_eq!(ch3(&twice, &once_more), 0.0);
    }

    #[test]
    fn unknown_hashing_and_mismatched_tags_cannot_tell() {
        let old = servers(3);
        let unknown = Hashing::Unknown("Crc32 hash".into());
        let crc = pool(&old, unknown);
        let ch3 = pool(&old, Hashing::Ch3);
        assert_eq!(remapped(Some(&crc), Some(&ch3)).unwrap_err(), "Crc32 hash");
        let short = pool(
            &old,
            Hashing::Rendezvous {
                tags: vec!["a".into()],
            },
        );
        assert!(remapped(Some(&short), Some(&short)).is_err());
        assert_eq!(remapped(None, Some(&ch3)).unwrap_err(), "a new pool");
        assert_eq!(remapped(Some(&ch3), None).unwrap_err(), "the pool is gone");
    }

    #[test]
    fn added_removed_reports_each_entry_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let old = s(&["a", "b", "b", "c"]);
        let new = s(&["a", "b", "d", "c", "d"]);
        let (added, removed) = added_removed(&old, &new);
        assert_eq!(added, [&"d".to_string(), &"d".to_string()]);
        assert_eq!(removed, [&"b".to_string()]);
    }

    #[test]
    fn added_removed_and_moved_servers() {
        let old = servers(4);
        let mut new = old.clone();
        new.remove(1);
        new.push("10.0.9.9:11211".into());
        let (added, removed) = added_removed(&old, &new);
        assert_eq!(added, [&new[3]]);
        assert_eq!(removed, [&old[1]]);
        assert_eq!(
            moved(&old, &new),
            [(old[2].clone(), 2, 1), (old[3].clone(), 3, 2)]
        );
    }

    #[test]
    fn a_share_prints_as_a_percentage_with_one_decimal() {
        let share = |moved| Share {
            moved,
            sample: SAMPLE_KEYS,
        };
        assert_eq!(share(981).to_string(), "9.8%");
        assert_eq!(share(SAMPLE_KEYS).to_string(), "100.0%");
    }
}
