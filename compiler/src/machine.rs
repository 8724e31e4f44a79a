//! The CPU a benchmark ran on, and its nominal fp32 FLOP limit, so that
//! `netc bench` can say how far each model is from the hardware and every
//! figure names its machine.

use serde::Serialize;

/// What the benchmark needs to know about the processor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The processor's name, as `lscpu` shows it.
    pub cpu: String,
    /// The widest fp32 vector instructions detected: "avx512", "avx2+fma", ...
    pub vector: String,
    /// fp32 lanes of one vector unit's operation.
    pub lanes: u32,
    /// Whether a multiply and an add issue as one fused operation (2 FLOP).
    pub fma: bool,
    /// Clock in GHz for the limit: measured on busy cores where the CPU
    /// allows it ([`measured_ghz`]), else the highest the kernel reports.
    pub ghz: Option<f64>,
    /// The clock the kernel reports (cpufreq's maximum, else /proc/cpuinfo's
    /// "cpu MHz"): a guest often sees only the base clock there, 2.6 GHz on
    /// an EPYC that ran at 3.65, which put netc at 120 % of the limit.
    pub reported_ghz: Option<f64>,
    /// Whether `ghz` was measured (else it is `reported_ghz`).
    pub clock_measured: bool,
}

/// Vector units per core that can each start an fp32 multiply-add every
/// cycle. Two on the x86 server cores this project meets (Zen 2-4, Skylake
/// and later Xeons with two FMA ports); the figure is a nominal ceiling, not
/// a promise, and documentation says so.
pub const VECTOR_UNITS: u32 = 2;

impl Machine {
    /// The processor this process runs on, its clock measured on `threads`
    /// threads at once.
    pub fn detect(threads: usize) -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let vendor = field("vendor_id").unwrap_or_default();
        let max_khz =
            std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok());
        let reported_ghz = max_khz
            .map(|k| k / 1e6)
            .or_else(|| {
                field("cpu MHz")
                    .and_then(|m| m.parse::<f64>().ok())
                    .map(|m| m / 1e3)
            })
            .filter(|g| g.is_finite() && *g > 0.0);
        let (vector, lanes, fma) = vector_width(&vendor);
        let measured = measured_ghz(threads);
        Machine {
            cpu,
            vector: vector.to_string(),
            lanes,
            fma,
            ghz: measured.or(reported_ghz),
            reported_ghz,
            clock_measured: measured.is_some(),
        }
    }

    /// fp32 FLOP per cycle of one core.
    pub fn flop_per_cycle(&self) -> u32 {
        self.lanes * VECTOR_UNITS * if self.fma { 2 } else { 1 }
    }

    /// The nominal limit in FLOP/s for `cores` cores; `None` without a clock.
    pub fn peak_flops(&self, cores: usize) -> Option<f64> {
        self.ghz
            .map(|g| cores as f64 * self.flop_per_cycle() as f64 * g * 1e9)
    }
}

/// The clock of a busy core in GHz: a chain of dependent register adds, one
/// a cycle on x86-64 cores, timed on `threads` threads at once (all of them
/// busy, as in a benchmark, so at the clock they share), the best of a few
/// tries on each, the fastest thread. `None` on other architectures. It is
/// the clock of scalar code: an Intel core that slows down for AVX-512 runs
/// its products slower, so the limit is a ceiling there, as it is meant to be.
#[cfg(target_arch = "x86_64")]
pub fn measured_ghz(threads: usize) -> Option<f64> {
    /// Adds per timing: about 10 ms at 2-4 GHz, long against the timer.
    const ADDS: u64 = 32_000_000;
    let one = || {
        (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                add_chain(ADDS / 8);
                ADDS as f64 / start.elapsed().as_secs_f64() / 1e9
            })
            .fold(0.0, f64::max)
    };
    let best = std::thread::scope(|s| {
        let all: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(one)).collect();
        all.into_iter()
            .filter_map(|t| t.join().ok())
            .fold(0.0, f64::max)
    });
    (best.is_finite() && best > 0.0).then_some(best)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn measured_ghz(_threads: usize) -> Option<f64> {
    None
}

/// `rounds` x 8 adds, each waiting for the one before: 8 cycles a round. The
/// loop's own count and branch run beside the chain, not in it. The adds
/// take a register, not an immediate: Golden Cove and later Intel cores
/// (Emerald Rapids among them) fold a small immediate add into the renamer
/// and run several such adds a cycle, which would read as a clock several
/// times too high.
#[cfg(target_arch = "x86_64")]
fn add_chain(rounds: u64) {
    let mut x: u64 = 0;
    let one: u64 = std::hint::black_box(1);
    let mut n = rounds.max(1);
    // SAFETY: registers only; no memory, no stack, flags clobbered (the
    // default without `preserves_flags`).
    unsafe {
        std::arch::asm!(
            "2:",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "sub {n}, 1",
            "jnz 2b",
            x = inout(reg) x,
            one = in(reg) one,
            n = inout(reg) n,
            options(nomem, nostack),
        );
    }
    std::hint::black_box((x, n));
}

/// The widest fp32 vector operation this CPU runs at full width.
#[cfg(target_arch = "x86_64")]
fn vector_width(vendor: &str) -> (&'static str, u32, bool) {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // AMD's Zen 4 runs 512-bit instructions on 256-bit units: the same
        // FLOP per cycle as AVX2. Intel's server cores have 512-bit units.
        if vendor == "AuthenticAMD" {
            ("avx512 (256-bit units)", 8, true)
        } else {
            ("avx512", 16, true)
        }
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        ("avx2+fma", 8, true)
    } else if std::arch::is_x86_feature_detected!("avx") {
        ("avx", 8, false)
    } else {
        ("sse2", 4, false)
    }
}

#[cfg(target_arch = "aarch64")]
fn vector_width(_vendor: &str) -> (&'static str, u32, bool) {
    ("neon", 4, true)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn vector_width(_vendor: &str) -> (&'static str, u32, bool) {
    ("scalar", 1, false)
}

/// Nominal FLOP to train on one example: the forward pass (2 per
/// multiply-accumulate), then the gradients of the weights and of the
/// inputs, each as many again. Counted from MACs alone: pooling, LRN and
/// activations are a few percent of these models' work.
pub fn train_flop_per_example(macs: u64) -> f64 {
    3.0 * 2.0 * macs as f64
}

/// Nominal FLOP to infer one example: the forward pass.
pub fn infer_flop_per_example(macs: u64) -> f64 {
    2.0 * macs as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_cores_times_flop_per_cycle_times_clock() {
        let m = Machine {
            cpu: "test".into(),
            vector: "avx2+fma".into(),
            lanes: 8,
            fma: true,
            ghz: Some(2.5),
            reported_ghz: Some(2.0),
            clock_measured: true,
        };
        assert_eq!(m.flop_per_cycle(), 32);
        assert_eq!(m.peak_flops(2), Some(2.0 * 32.0 * 2.5e9));
        let no_clock = Machine { ghz: None, ..m };
        assert_eq!(no_clock.peak_flops(2), None);
    }

    #[test]
    fn this_machine_is_detected() {
        let m = Machine::detect(2);
        assert!(!m.cpu.is_empty());
        assert!(m.lanes >= 1 && m.flop_per_cycle() >= 1);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_measured_clock_is_a_clock() {
        // Servers and laptops run at 1-6 GHz; a chain that was not one (the
        // adds run in parallel, or counted twice) lands far outside, and a
        // loaded test machine only lowers it.
        let g = measured_ghz(1).expect("x86-64 measures its clock");
        assert!((0.3..8.0).contains(&g), "{g} GHz");
    }
}
