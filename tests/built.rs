//! Generated programs built and run by the tests: weights and inputs as
//! safetensors files, and the hidden `forward` command that gives a
//! program's logits for them.

use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tensors by name: shape and values.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

pub fn read(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (v.shape().to_vec(), values))
        })
        .collect()
}

/// Writes tensors of any dtype: (name, dtype, shape, little-endian bytes).
pub fn write_raw(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

pub fn write(path: &Path, tensors: &Tensors) {
    let raw: Vec<_> = tensors
        .iter()
        .map(|(n, (s, v))| {
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n.clone(), Dtype::F32, s.clone(), bytes)
        })
        .collect();
    write_raw(path, &raw);
}

/// Deterministic values in [-1, 1).
pub fn noise(seed: usize, n: usize) -> Vec<f32> {
    let mut s = seed as u64 * 6364136223846793005 + 1442695040888963407;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs `binary` with `args`; its standard output, or a panic with its errors.
pub fn ok(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A model's program, built from `source`.
pub struct Program {
    pub checked: netc::Checked,
    pub binary: PathBuf,
}

/// Checks the first model of `source` and builds its program, its crate in
/// `dir/<model>`.
pub fn build(dir: &Path, file: &str, source: &str) -> Program {
    let c = netc::check(source).unwrap_or_else(|d| panic!("{}", d.render(file, source, false)));
    let checked = c.into_iter().next().unwrap();
    let build = netc::driver::Build {
        out: dir.join(&checked.model.name),
        target: netc::driver::target_dir(),
        cuda: false,
    };
    let binary = netc::driver::build(file, source, &checked, &build).unwrap();
    Program { checked, binary }
}

impl Program {
    /// The program's own initial weights (its names and shapes; Xavier's
    /// scale times sqrt(2), so that activations keep their size through
    /// ReLUs and the logits are not all near zero), with biases and batch
    /// norm's parameters and statistics made non-trivial, written to `path`.
    pub fn weights(&self, dir: &Path, path: &Path) -> Tensors {
        let init = dir.join("init.safetensors");
        let out = Command::new(&self.binary)
            .args(["forward", "--input"])
            .arg(dir.join("none"))
            .arg("--output")
            .arg(dir.join("o"))
            .arg("--save-weights")
            .arg(&init)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "there is no input file, but the weights are written first"
        );
        let mut names: Vec<String> = read(&init).into_keys().collect();
        names.sort();
        let mut weights = read(&init);
        for (i, name) in names.iter().enumerate() {
            let (_, v) = weights.get_mut(name).unwrap();
            let n = noise(i + 1, v.len());
            let tweak = |v: &mut Vec<f32>, f: &dyn Fn(f32) -> f32| {
                v.iter_mut().zip(&n).for_each(|(x, r)| *x = f(*r));
            };
            match name.rsplit('.').next().unwrap() {
                "bias" | "beta" | "running_mean" => tweak(v, &|r| 0.1 * r),
                "gamma" => tweak(v, &|r| 1.0 + 0.2 * r),
                "running_var" => tweak(v, &|r| 0.5 + r.abs()),
                _ => v.iter_mut().for_each(|x| *x *= std::f32::consts::SQRT_2),
            }
        }
        write(path, &weights);
        weights
    }

    /// The program's logits for `n` images `input` (N x C x H x W) with the
    /// weights in `weights`.
    pub fn forward(&self, dir: &Path, weights: &Path, input: &[f32], n: usize) -> Vec<f32> {
        let [h, w, c] = self.checked.model.input.hwc().map(|v| v as usize);
        let input_path = dir.join("input.safetensors");
        let tensors: Tensors = [("input".to_string(), (vec![n, c, h, w], input.to_vec()))].into();
        write(&input_path, &tensors);
        let logits = dir.join("logits.safetensors");
        let p = |p: &Path| p.display().to_string();
        ok(
            &self.binary,
            &[
                "forward",
                "--input",
                &p(&input_path),
                "--output",
                &p(&logits),
                "--weights",
                &p(weights),
            ],
        );
        let (shape, values) = read(&logits).remove("logits").unwrap();
        assert_eq!(shape, [n, self.checked.model.settings.classes as usize]);
        values
    }
}
