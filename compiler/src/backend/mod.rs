//! Back ends: what netc produces from a typed graph.

pub mod burn;
pub mod forward;
pub mod graph;
pub mod onnx;
pub mod pytorch;
pub mod summary;

/// A file name as the comments and docstrings of generated code show it:
/// `\` and `"` escaped as both Rust and Python read them, control characters
/// replaced, so a path like `C:\Users\nets` or `my"nets/` cannot end a string
/// early or make an invalid escape (`\U` in a Python docstring).
pub fn shown_path(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    for c in file.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}
