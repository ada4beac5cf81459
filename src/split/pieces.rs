//! Where to cut a run of bytes into random pieces.

use std::ops::Range;

use rand::Rng;

/// The length of the next piece: 1 to `max` bytes (at least 1), at most `left`.
pub fn next_len(rng: &mut impl Rng, left: usize, max: usize) -> usize {
    rng.random_range(1..=max.max(1)).min(left)
}

/// Consecutive random pieces of `0..len`, each 1 to `max` bytes long.
pub fn cut<R: Rng>(rng: &mut R, len: usize, max: usize) -> Pieces<'_, R> {
    Pieces {
        rng,
        pos: 0,
        len,
        max,
    }
}

/// The iterator of [`cut`].
#[derive(Debug)]
pub struct Pieces<'a, R> {
    rng: &'a mut R,
    pos: usize,
    len: usize,
    max: usize,
}

impl<R: Rng> Iterator for Pieces<'_, R> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.pos >= self.len {
            return None;
        }
        let start = self.pos;
        self.pos += next_len(self.rng, self.len - start, self.max);
        Some(start..self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn pieces_cover_every_byte_exactly_once_in_order() {
        for seed in 0..200 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let len = (seed as usize * 7) % 450;
            let max = 1 + (seed as usize % 60);
            let mut covered = vec![0u8; len];
            let mut expected_start = 0;
            for piece in cut(&mut rng, len, max) {
                assert_eq!(piece.start, expected_start);
                assert!(!piece.is_empty() && piece.len() <= max);
                for b in &mut covered[piece.clone()] {
                    *b += 1;
                }
                expected_start = piece.end;
            }
            assert_eq!(expected_start, len);
            assert!(covered.iter().all(|&c| c == 1));
        }
    }

    #[test]
    fn pieces_vary_in_size_and_a_zero_max_still_progresses() {
        let mut rng = SmallRng::seed_from_u64(7);
        let sizes: Vec<usize> = cut(&mut rng, 200, 50).map(|p| p.len()).collect();
        assert!(sizes.len() >= 4);
        assert!(sizes.iter().any(|&s| s != sizes[0]));
        let mut rng = SmallRng::seed_from_u64(7);
        assert_eq!(cut(&mut rng, 3, 0).count(), 3);
        assert_eq!(cut(&mut rng, 0, 10).count(), 0);
    }

    #[test]
    fn the_same_seed_cuts_the_same_way() {
        let a: Vec<_> = cut(&mut SmallRng::seed_from_u64(42), 200, 64).collect();
        let b: Vec<_> = cut(&mut SmallRng::seed_from_u64(42), 200, 64).collect();
        assert_eq!(a, b);
    }
}
