//! netc never panics or hangs: random text and randomly mutated zoo files
//! must give either a checked model or a rendered error, and every model
//! `check` accepts goes through both back ends (code or a rendered error).

use proptest::prelude::*;
use std::sync::mpsc;
use std::time::Duration;

/// Checks and renders `source` on another thread, failing if it takes too long.
fn check_terminates(source: String) {
    let (tx, rx) = mpsc::channel();
    let shown = source.clone();
    std::thread::spawn(move || {
        let render = |d: netc::diag::Diagnostic| d.render("fuzz.net", &source, false);
        let out = match netc::check(&source) {
            Ok(models) => models
                .iter()
                .map(|c| {
                    let burn = netc::backend::burn::model_rs(&c.model, &source, "fuzz.net");
                    let torch = netc::backend::pytorch::module_py(&c.model, &source, "fuzz.net");
                    netc::backend::summary::table(&c.model, &c.summary, "fuzz.net")
                        + &burn.unwrap_or_else(render)
                        + &torch.unwrap_or_else(render)
                })
                .collect::<String>(),
            Err(d) => render(d),
        };
        let _ = tx.send(out);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => assert!(!out.is_empty()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("netc hung on:\n{shown}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("netc panicked on:\n{shown}"),
    }
}

fn zoo() -> Vec<String> {
    netc_tests::net_files("zoo")
        .into_iter()
        .map(|(_, _, s)| s)
        .collect()
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "\n",
    ":",
    "*",
    "* 3",
    "=",
    "/2",
    "/0",
    "0",
    "-1",
    "3x3",
    "0x0",
    "1x1x1",
    "99999999999999999999",
    "conv",
    "fc 10",
    "concat {",
    "add {",
    "identity",
    "input 24x24x3",
    "input 1x1x1",
    "fire(1, 2, 3)",
    "valid",
    "groups=3",
    "dwconv 3x3",
    "avgpool global",
    "lrn radius=0",
    "dropout 1",
    "train classes=1",
    "# c",
    ";",
    "é",
    "\u{feff}",
    "\u{a0}",
    "\u{441}",
    "×",
    "\t",
    "block b(x) { b(x) }",
    "x: ",
    "mult=0",
    "kernel=x",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    DuplicateLine(usize, usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), 1usize..6).prop_map(|(a, n)| Edit::DuplicateLine(a, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

/// The nearest character boundary at or below `at`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, e: &Edit) -> String {
    match *e {
        Edit::Delete(at, n) => {
            let a = boundary(&s, at);
            let b = boundary(&s, (a + n).min(s.len()));
            s.replace_range(a..b.max(a), "");
            s
        }
        Edit::Insert(at, t) => {
            let a = boundary(&s, at);
            s.insert_str(a, TOKENS[t]);
            s
        }
        Edit::DuplicateLine(at, n) => {
            let mut lines: Vec<&str> = s.lines().collect();
            if lines.is_empty() {
                return s;
            }
            let i = at % lines.len();
            let line = lines[i];
            for _ in 0..n {
                lines.insert(i, line);
            }
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = s.lines().collect();
            if lines.is_empty() {
                return s;
            }
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
    }
}

/// How one level of a deep program wraps the level inside it.
#[derive(Debug, Clone, Copy)]
enum Level {
    /// The inner part in a block of its own, called (`* n` times).
    Call(u32),
    /// `add { inner; identity }`
    Add,
    /// `concat { inner }`
    Concat,
    /// `{ inner } * n`, a repeated sequence.
    Seq(u32),
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        (0u32..3).prop_map(Level::Call),
        Just(Level::Add),
        Just(Level::Concat),
        (0u32..4).prop_map(Level::Seq),
    ]
}

/// A program nested as `levels` say, outermost first: around the limits of
/// nesting (64 braces, 64 block calls and groups) and of expansion.
fn nested(levels: &[Level], repeat: u32) -> String {
    let mut blocks = String::new();
    let mut inner = format!("conv 3x3 4 * {repeat}");
    for (i, l) in levels.iter().enumerate().rev() {
        inner = match *l {
            Level::Call(n) => {
                blocks += &format!("block b{i}(f) {{\n{inner}\n}}\n");
                format!("b{i}(4) * {n}")
            }
            Level::Add => format!("add {{\n{inner}\nidentity\n}}"),
            Level::Concat => format!("concat {{\n{inner}\n}}"),
            Level::Seq(n) => format!("{{\n{inner}\n}} * {n}"),
        };
    }
    format!("{blocks}model m {{\ninput 8x8x4\n{inner}\nfc 10\n}}\n")
}

proptest! {
    // Fewer cases: some expand to the layer limit, and both back ends run.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn deep_and_repeated_programs_never_panic(
        levels in prop::collection::vec(level(), 0..80),
        repeat in 0u32..200,
    ) {
        check_terminates(nested(&levels, repeat));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "[a-z0-9x{}()=/,:*#;. \n\té€\u{feff}\u{a0}-]{0,300}") {
        check_terminates(s);
    }

    #[test]
    fn mutated_zoo_files_never_panic(file in 0usize..6, edits in prop::collection::vec(edit(), 1..8)) {
        let zoo = zoo();
        let mut s = zoo[file % zoo.len()].clone();
        for e in &edits {
            s = apply(s, e);
        }
        check_terminates(s);
    }
}
