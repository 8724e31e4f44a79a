//! Pruning masks through training: a run started from a weight file that
//! carries `mask/` tensors keeps the masked weights, and their average, at
//! exactly zero, copies the masks into the run, and resumes bit-exactly.

mod common;

use common::*;
use netc_runtime::checkpoint::Checkpoint;
use netc_runtime::masks::{Masks, MASKS, PREFIX};
use netc_runtime::params::{Named, Tensors};
use netc_runtime::train;
use std::path::Path;

/// A mask of `like`'s shape keeping every second value.
fn every_second(like: &Named) -> Named {
    Named {
        shape: like.shape.clone(),
        values: (0..like.values.len()).map(|i| (i % 2) as f32).collect(),
    }
}

/// Writes `weights`, masked, with their masks under `mask/`.
fn pruned_file(path: &Path, weights: &Tensors, masks: &Tensors) {
    let mut raw = weights.clone();
    Masks(masks.clone()).apply_to(&mut raw);
    for (n, m) in masks {
        raw.insert(format!("{PREFIX}{n}"), m.clone());
    }
    Checkpoint {
        raw,
        ..Default::default()
    }
    .save(path)
    .unwrap();
}

fn zeros_where_masked(t: &Named, m: &Named) -> bool {
    t.values
        .iter()
        .zip(&m.values)
        .all(|(v, k)| *k == 1.0 || *v == 0.0)
}

#[test]
fn masked_weights_stay_zero_through_training_averaging_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let device = Default::default();
    let first = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| o.asked.steps = Some(5)),
        &device,
    )
    .unwrap();
    let trained = Checkpoint::load(&first.run.join(train::CHECKPOINT))
        .unwrap()
        .raw;
    let masks: Tensors = ["conv.weight", "fc.weight"]
        .map(|n| (n.to_string(), every_second(&trained[n])))
        .into();
    let init = dir.path().join("pruned.safetensors");
    pruned_file(&init, &trained, &masks);
    let from = |steps: u64| {
        let init = init.clone();
        with(dir.path(), &runs, move |o| {
            o.asked.steps = Some(steps);
            o.asked.init_from = Some(init);
        })
    };
    // Decay and the average are on in SPEC: both must keep the zeros.
    let full = train_tiny(&SPEC, &from(12), &device).unwrap();
    let half = train_tiny(&SPEC, &from(6), &device).unwrap();
    let stored = Checkpoint::load(&half.run.join(MASKS)).unwrap().raw;
    assert_eq!(stored, masks, "the run holds its own copy of the masks");
    // Resuming needs the run's copy only.
    std::fs::remove_file(&init).unwrap();
    let resumed = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(12);
            o.resume = Some(half.run.clone());
        }),
        &device,
    )
    .unwrap();
    let a = Checkpoint::load(&full.run.join(train::CHECKPOINT)).unwrap();
    let b = Checkpoint::load(&resumed.run.join(train::CHECKPOINT)).unwrap();
    let averaged = a.averaged.as_ref().expect("the run averages");
    for (name, m) in &masks {
        assert!(zeros_where_masked(&a.raw[name], m), "{name}: raw");
        assert!(zeros_where_masked(&averaged[name], m), "{name}: average");
        // The kept weights did train.
        let moved = a.raw[name]
            .values
            .iter()
            .zip(&trained[name].values)
            .zip(&m.values)
            .any(|((x, y), k)| *k == 1.0 && x != y);
        assert!(moved, "{name} did not train");
    }
    assert_eq!(
        a.raw, b.raw,
        "the resumed run ends where the uninterrupted one does"
    );
    assert_eq!(a.averaged, b.averaged);
}

#[test]
fn masks_that_do_not_fit_the_model_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 40);
    let runs = dir.path().join("runs");
    let device = Default::default();
    let first = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| o.asked.steps = Some(1)),
        &device,
    )
    .unwrap();
    let trained = Checkpoint::load(&first.run.join(train::CHECKPOINT))
        .unwrap()
        .raw;
    let wrong = Named {
        shape: vec![3],
        values: vec![1.0, 0.0, 2.0],
    };
    let masks: Tensors = [
        ("fc.weight".to_string(), wrong.clone()),
        ("nope.weight".to_string(), wrong),
    ]
    .into();
    let init = dir.path().join("bad.safetensors");
    let mut raw = trained.clone();
    for (n, m) in &masks {
        raw.insert(format!("{PREFIX}{n}"), m.clone());
    }
    Checkpoint {
        raw,
        ..Default::default()
    }
    .save(&init)
    .unwrap();
    let e = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(1);
            o.asked.init_from = Some(init.clone());
        }),
        &device,
    )
    .unwrap_err();
    assert!(
        e.contains("bad.safetensors: the pruning masks do not fit this model")
            && e.contains("`mask/fc.weight` has shape [3]")
            && e.contains("`mask/nope.weight` masks no tensor"),
        "{e}"
    );
}
