//! Memory settings for the processes netc starts that allocate a batch's
//! tensors afresh every step: PyTorch's sides of `netc bench` and the torch
//! engine.
//!
//! With glibc's defaults, blocks above the mapping threshold (128 KiB at
//! first, raised as mapped blocks are freed, 32 MiB at most) are mapped
//! afresh, and the heap's free top goes back to the kernel once it exceeds
//! twice that threshold; each step then faults its activations in again, a
//! page at a time. On an AMD EPYC
//! (Zen 4, KVM) that cost hand-written channels-last PyTorch 25-45 % of its
//! training rate (squeeze1: 1,160-1,460 examples/s as started, 1,450-1,920
//! with these settings, in turns; docs/performance.md). PyTorch's own tuning
//! guide has users switch allocators for this; these settings get most of it
//! with nothing installed. A variable the caller has already set is left as
//! it is, so a user's `LD_PRELOAD` of tcmalloc or their own thresholds win.

use std::process::Command;

/// The variables and their values, each with why.
pub const SETTINGS: [(&str, &str); 3] = [
    // Blocks up to 32 MiB (glibc's largest allowed threshold) come from the
    // heap, reused step after step, instead of fresh mappings.
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    // Freed memory at the heap's top stays with the process (64 GiB: never
    // trimmed in practice).
    ("MALLOC_TRIM_THRESHOLD_", "68719476736"),
    // PyTorch's CPU allocator asks for transparent huge pages for blocks of
    // 2 MiB or more: larger blocks, still mapped afresh, fault 2 MiB at a time.
    ("THP_MEM_ALLOC_ENABLE", "1"),
];

/// Sets each of [`SETTINGS`] on `cmd` that the environment does not already
/// set; returns the ones it set.
pub fn apply(cmd: &mut Command) -> Vec<(&'static str, &'static str)> {
    apply_unless(cmd, |key| std::env::var_os(key).is_some())
}

fn apply_unless(
    cmd: &mut Command,
    present: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    let set: Vec<_> = SETTINGS.into_iter().filter(|(k, _)| !present(k)).collect();
    cmd.envs(set.iter().copied());
    set
}

/// `KEY=value KEY=value`, as a shell would take them.
pub fn shown(settings: &[(&str, &str)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command) -> Vec<(String, String)> {
        cmd.get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.into(), v?.to_str()?.into())))
            .collect()
    }

    #[test]
    fn every_setting_is_set_where_the_environment_has_none() {
        let mut cmd = Command::new("true");
        let set = apply_unless(&mut cmd, |_| false);
        assert_eq!(set, SETTINGS.to_vec());
        let mut env = env_of(&cmd);
        env.sort();
        let mut want: Vec<_> = SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        assert_eq!(env, want);
    }

    #[test]
    fn a_variable_the_user_set_is_left_alone() {
        let mut cmd = Command::new("true");
        let set = apply_unless(&mut cmd, |k| k == "MALLOC_MMAP_THRESHOLD_");
        assert!(set.iter().all(|(k, _)| *k != "MALLOC_MMAP_THRESHOLD_"));
        assert_eq!(set.len(), SETTINGS.len() - 1);
        assert!(env_of(&cmd)
            .iter()
            .all(|(k, _)| k != "MALLOC_MMAP_THRESHOLD_"));
    }

    #[test]
    fn the_settings_read_as_shell_assignments() {
        assert_eq!(shown(&SETTINGS[..1]), "MALLOC_MMAP_THRESHOLD_=33554432");
        assert_eq!(shown(&[]), "");
    }

    #[test]
    fn a_started_process_sees_the_settings() {
        // The variables reach the child: a typo in how they are passed
        // would leave PyTorch on glibc's defaults without a word.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $MALLOC_MMAP_THRESHOLD_ $THP_MEM_ALLOC_ENABLE"]);
        cmd.env_remove("MALLOC_MMAP_THRESHOLD_")
            .env_remove("THP_MEM_ALLOC_ENABLE");
        apply_unless(&mut cmd, |_| false);
        let out = cmd.output().expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "33554432 1");
    }
}
