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
    /// Clock in GHz: the highest the kernel reports (turbo where known).
    pub ghz: Option<f64>,
}

/// Vector units per core that can each start an fp32 multiply-add every
/// cycle. Two on the x86 server cores this project meets (Zen 2-4, Skylake
/// and later Xeons with two FMA ports); the figure is a nominal ceiling, not
/// a promise, and documentation says so.
pub const VECTOR_UNITS: u32 = 2;

impl Machine {
    /// The processor this process runs on.
    pub fn detect() -> Machine {
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
        let ghz = max_khz
            .map(|k| k / 1e6)
            .or_else(|| {
                field("cpu MHz")
                    .and_then(|m| m.parse::<f64>().ok())
                    .map(|m| m / 1e3)
            })
            .filter(|g| g.is_finite() && *g > 0.0);
        let (vector, lanes, fma) = vector_width(&vendor);
        Machine {
            cpu,
            vector: vector.to_string(),
            lanes,
            fma,
            ghz,
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
        };
        assert_eq!(m.flop_per_cycle(), 32);
        assert_eq!(m.peak_flops(2), Some(2.0 * 32.0 * 2.5e9));
        let no_clock = Machine { ghz: None, ..m };
        assert_eq!(no_clock.peak_flops(2), None);
    }

    #[test]
    fn this_machine_is_detected() {
        let m = Machine::detect();
        assert!(!m.cpu.is_empty());
        assert!(m.lanes >= 1 && m.flop_per_cycle() >= 1);
    }
}
