//! Dropout on the CPU. burn's draws a Bernoulli mask one value at a time,
//! on the calling thread, from its ChaCha generator: nin2 trained 10-15 %
//! faster with its two dropout layers off. Here whether value `i` is kept
//! is a hash of `i` and of one seed drawn from the backend's generator: the
//! mask is made on every thread, is the same on any number of threads, and
//! the backward pass makes it again instead of keeping it. Seeded as every
//! training step seeds the backend, a resumed run draws the same masks.

use super::cpu::filled;

/// SplitMix64's finalizer: every bit of the output depends on every bit
/// of the input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which values a dropout layer keeps, and the factor they are scaled by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mask {
    seed: u64,
    /// A value is dropped when the top 24 bits of its hash are below this.
    threshold: u32,
    scale: f32,
}

impl Mask {
    /// Values dropped with probability `prob`, the rest scaled by
    /// 1 / (1 - prob), as burn's `Dropout` does. `seed` may be any bits.
    pub fn new(seed: u64, prob: f64) -> Mask {
        let prob = prob.clamp(0.0, 1.0);
        Mask {
            seed: mix(seed),
            threshold: (prob * (1 << 24) as f64).round() as u32,
            scale: (1.0 / (1.0 - prob)) as f32,
        }
    }

    /// A seed from four uniform draws of a backend's generator.
    pub fn seed(draws: &[f32]) -> u64 {
        draws
            .iter()
            .fold(0u64, |s, d| mix(s ^ u64::from(d.to_bits())))
    }

    fn kept(&self, i: usize) -> bool {
        let h = mix(self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (h >> 40) as u32 >= self.threshold
    }

    /// `x` where kept, times the scale; 0 elsewhere. The forward pass on the
    /// input, and the backward pass on the output's gradient.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        const CHUNK: usize = 1 << 14;
        filled(
            x.len(),
            CHUNK,
            || (),
            |_, c, y| {
                let x = &x[c * CHUNK..][..y.len()];
                for (k, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    if self.kept(c * CHUNK + k) {
                        *y = x * self.scale;
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Mask;

    #[test]
    fn about_the_asked_share_is_dropped_and_the_rest_scaled() {
        let x: Vec<f32> = (0..200_000).map(|i| 1.0 + (i % 7) as f32).collect();
        for prob in [0.1, 0.5, 0.9] {
            let mask = Mask::new(42, prob);
            let y = mask.apply(&x);
            let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / x.len() as f64;
            assert!((dropped - prob).abs() < 0.01, "{prob}: {dropped}");
            let scale = (1.0 / (1.0 - prob)) as f32;
            for (&y, &x) in y.iter().zip(&x) {
                assert!(y == 0.0 || y == x * scale, "{x} -> {y}");
            }
            // The same seed gives the same mask; another seed another.
            assert_eq!(mask.apply(&x), y);
            assert_ne!(Mask::new(43, prob).apply(&x), y);
        }
        assert!(Mask::new(1, 0.0).apply(&x) == x);
        assert!(Mask::new(1, 1.0).apply(&x).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_mask_is_the_same_on_one_thread_or_two() {
        let x: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| Mask::new(3, 0.4).apply(&x))
        };
        assert_eq!(on(1), on(2));
    }

    #[test]
    fn neighbouring_values_are_dropped_independently() {
        let mask = Mask::new(7, 0.5);
        let y = mask.apply(&vec![1.0; 100_000]);
        // Next to each other, and a chunk of the parallel loop apart.
        for apart in [1, 1 << 14] {
            let pairs = y.len() - apart;
            let both = (0..pairs)
                .filter(|&i| y[i] == 0.0 && y[i + apart] == 0.0)
                .count();
            let share = both as f64 / pairs as f64;
            assert!((share - 0.25).abs() < 0.01, "{apart} apart: {share}");
        }
    }
}
