//! Memory settings for the processes netc starts that allocate a batch's
//! tensors afresh every step: PyTorch's sides of `netc bench` and the torch
//! engine.
//!
//! With glibc's defaults, blocks above the mapping threshold (128 KiB at
//! first, raised as mapped blocks are freed, 32 MiB at most) are mapped
//! afresh, and the heap's free top goes back to the kernel once it exceeds
//! twice that threshold; each step then faults its activations in again, a
//! page at a time. On an AMD EPYC (Zen 4, KVM) that cost hand-written
//! channels-last PyTorch 25-45 % of its training rate (squeeze1: 1,160-1,460
//! examples/s as started, 1,450-1,920 with these settings, in turns;
//! docs/performance.md). PyTorch's own tuning guide has users switch
//! allocators for this; these settings get most of it with nothing
//! installed. A variable the caller has already set is left as it is, so a
//! user's own values win (with a user's `LD_PRELOAD` of another allocator
//! the glibc variables do nothing, while PyTorch's huge pages still apply).
//! The price is memory: freed blocks stay with the process, and PyTorch's
//! peak resident memory in `netc bench` rose by up to 25 % (nin2).

use std::process::Command;

/// The variables and their values, each with why.
pub const SETTINGS: [(&str, &str); 3] = [
    // Blocks up to 32 MiB come from the heap, reused step after step,
    // instead of fresh mappings. glibc 2.36 ignores a larger value (and newer
    // ones may not), and a value ignored would leave the threshold fixed at
    // 128 KiB: the trim setting below turns its raising off.
    // Larger blocks (nin2's first activations, 57 MB) are still mapped.
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    // Freed memory at the heap's top stays with the process (64 GiB: never
    // trimmed in practice).
    ("MALLOC_TRIM_THRESHOLD_", "68719476736"),
    // PyTorch's CPU allocator asks for transparent huge pages for blocks of
    // 2 MiB or more (and aligns every block to a page): larger blocks, still
    // mapped afresh, fault 2 MiB at a time. Nothing where the kernel's
    // transparent_hugepage is `never`.
    ("THP_MEM_ALLOC_ENABLE", "1"),
];

/// Sets each of [`SETTINGS`] on `cmd` that the environment does not already
/// set.
pub fn apply(cmd: &mut Command) {
    apply_unless(cmd, |key| std::env::var_os(key).is_some())
}

fn apply_unless(cmd: &mut Command, present: impl Fn(&str) -> bool) {
    cmd.envs(SETTINGS.into_iter().filter(|(k, _)| !present(k)));
}

/// Leaves every one of [`SETTINGS`] out of `cmd`'s environment, the
/// caller's included: glibc's allocator as it comes.
pub fn remove(cmd: &mut Command) {
    for (key, _) in SETTINGS {
        cmd.env_remove(key);
    }
}

/// What a process started with [`apply`] sees of each of [`SETTINGS`]: the
/// environment's value where it has one, else netc's.
pub fn effective() -> Vec<(&'static str, String)> {
    SETTINGS
        .into_iter()
        .map(|(k, v)| (k, std::env::var(k).unwrap_or_else(|_| v.to_string())))
        .collect()
}

/// `KEY=value KEY=value`, as a shell would take them.
pub fn shown(settings: &[(&str, impl AsRef<str>)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_ref()))
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
        apply_unless(&mut cmd, |_| false);
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
        apply_unless(&mut cmd, |k| k == "MALLOC_MMAP_THRESHOLD_");
        let env = env_of(&cmd);
        assert!(env.iter().all(|(k, _)| k != "MALLOC_MMAP_THRESHOLD_"));
        assert_eq!(env.len(), SETTINGS.len() - 1);
    }

    #[test]
    fn the_settings_read_as_shell_assignments() {
        assert_eq!(shown(&SETTINGS[..1]), "MALLOC_MMAP_THRESHOLD_=33554432");
        let none: [(&str, &str); 0] = [];
        assert_eq!(shown(&none), "");
    }

    #[test]
    fn a_started_process_sees_the_settings() {
        // The variables reach the child: a typo in how they are passed
        // would leave PyTorch on glibc's defaults without a word.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo $MALLOC_MMAP_THRESHOLD_ $MALLOC_TRIM_THRESHOLD_ $THP_MEM_ALLOC_ENABLE",
        ]);
        remove(&mut cmd);
        apply_unless(&mut cmd, |_| false);
        let out = cmd.output().expect("sh runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "33554432 68719476736 1"
        );
    }

    #[test]
    fn removed_settings_reach_no_process() {
        // --plain-allocator: not even a value the caller's environment holds.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo x${MALLOC_TRIM_THRESHOLD_}x"])
            .env("MALLOC_TRIM_THRESHOLD_", "7");
        remove(&mut cmd);
        let out = cmd.output().expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "xx");
    }
}
