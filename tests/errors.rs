//! The catalogue of bad files under tests/bad: each must be refused with a
//! message that names the place, and the message must match its snapshot.

use netc_tests::net_files;

#[test]
fn every_bad_file_is_refused_with_its_message() {
    let files = net_files("tests/bad");
    assert!(files.len() >= 30);
    let mut problems = Vec::new();
    for (stem, path, source) in files {
        let Err(d) = netc::check(&source) else {
            problems.push(format!("{path} was accepted"));
            continue;
        };
        let rendered = d.render(&path, &source, false);
        let (line, col) = netc::diag::line_col(&source, d.span.start);
        if !rendered.contains(&format!("{path}:{line}:{col}")) {
            problems.push(format!("{path}: no file:line:column in\n{rendered}"));
        }
        if d.help.is_none() {
            problems.push(format!("{path}: no hint in\n{rendered}"));
        }
        insta::assert_snapshot!(stem, rendered);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs `f` on a thread with the default 2 MiB stack of spawned threads (the
/// main thread has 8), failing if it panics, overflows or takes minutes.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("a thread starts");
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("finished, without panic or hang")
}

/// The rendered error of a source netc must refuse.
fn refused(source: &str) -> (netc::diag::Diagnostic, String) {
    let Err(d) = netc::check(source) else {
        panic!("accepted:\n{}", &source[..source.len().min(2000)]);
    };
    let rendered = d.render("x.net", source, false);
    (d, rendered)
}

/// A model calling block `b1`, which calls `b2`, ... down to `b{depth}`.
/// With `groups`, each block wraps its call in an `add` of two branches.
fn chain(depth: usize, groups: bool) -> String {
    let mut s = String::new();
    for i in 1..depth {
        if groups {
            s += &format!(
                "block b{i}(f) {{\n    add {{\n        b{}(f)\n        identity\n    }}\n}}\n",
                i + 1
            );
        } else {
            s += &format!("block b{i}(f) {{\n    b{}(f)\n}}\n", i + 1);
        }
    }
    s += &format!("block b{depth}(f) {{\n    conv 3x3 f\n}}\n");
    s + "model m {\n    input 8x8x4\n    b1(4)\n    fc 10\n}\n"
}

/// Everything netc does with an accepted source: check, both back ends.
fn check_and_emit(source: &str) -> Result<(), String> {
    let models = netc::check(source).map_err(|d| d.render("x.net", source, false))?;
    for c in &models {
        netc::backend::burn::model_rs(&c.model, source, "x.net")
            .map_err(|d| d.render("x.net", source, false))?;
        netc::backend::pytorch::module_py(&c.model, source, "x.net")
            .map_err(|d| d.render("x.net", source, false))?;
    }
    Ok(())
}

#[test]
fn block_chains_at_the_depth_limit_build_and_deeper_ones_are_refused() {
    let max = netc::lower::MAX_DEPTH;
    // Each block of the chain adds a level; with groups, each `add` too.
    for (depth, groups) in [(max, false), (max / 2, true)] {
        let source = chain(depth, groups);
        let result = on_small_stack(move || check_and_emit(&source));
        if let Err(e) = result {
            panic!("a chain {depth} deep (groups: {groups}) was refused:\n{e}");
        }
    }
    for (depth, groups) in [(max + 1, false), (max / 2 + 1, true), (5000, false)] {
        let source = chain(depth, groups);
        let (d, rendered) = on_small_stack(move || refused(&source));
        assert!(
            d.message.contains(&format!("nested more than {max} deep")),
            "{rendered}"
        );
        assert!(rendered.contains("the chain of"), "{rendered}");
        assert!(rendered.contains("b1 → b2 → b3 → …"), "{rendered}");
        assert!(d
            .help
            .as_deref()
            .unwrap_or("")
            .contains("one after another"));
    }
}

#[test]
fn branch_groups_at_the_brace_limit_parse_and_build_on_a_small_stack() {
    // The model's brace and 63 more: 64 levels, the most the parser takes,
    // groups and sequences (`{ ... }`) in turn.
    let mut body = "conv 3x3 4".to_string();
    for i in 0..63 {
        body = match i % 3 {
            0 => format!("add {{\n{body}\nidentity\n}}"),
            1 => format!("concat {{\n{body}\n}}"),
            _ => format!("{{\n{body}\n}}"),
        };
    }
    let source = format!("model m {{\ninput 8x8x4\n{body}\nfc 10\n}}\n");
    let deeper = source.replacen("conv 3x3 4", "add {\nidentity\n}", 1);
    if let Err(e) = on_small_stack(move || check_and_emit(&source)) {
        panic!("64 levels of braces were refused:\n{e}");
    }
    let (d, rendered) = on_small_stack(move || refused(&deeper));
    assert_eq!(d.message, "nesting too deep", "{rendered}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let line = "    relu\n";
    let n = netc::syntax::MAX_SOURCE_BYTES / line.len() + 1;
    let source = format!(
        "model m {{\n    input 8x8x3\n{}    fc 10\n}}\n",
        line.repeat(n)
    );
    let (d, rendered) = refused(&source);
    assert_eq!(d.message, "file too large", "{rendered}");
    assert!(rendered.contains("at most 1 MiB"), "{rendered}");
    // The same from the bytes of a file, as `netc` reads it.
    let d = netc::syntax::decode(source.as_bytes()).unwrap_err();
    assert_eq!(d.message, "file too large");
}

#[test]
fn layers_are_counted_across_the_models_of_a_file() {
    let model =
        |name: &str| format!("model {name} {{\n    input 8x8x3\n    relu * 60000\n    fc 10\n}}\n");
    let one = model("a");
    assert!(netc::check(&one).is_ok());
    let source = one + &model("b");
    let (d, rendered) = refused(&source);
    assert_eq!(d.message, "file too large", "{rendered}");
    assert!(rendered.contains("x.net:8:5"), "{rendered}");
}

#[test]
fn repeating_nothing_ends_at_once() {
    // 10^30 empty iterations if each were run.
    let mut body = "{ }".to_string();
    for _ in 0..5 {
        body = format!("{{ {body} * 1000000 }}");
    }
    let source = format!("model m {{\n    input 8x8x3\n    {body} * 1000000\n    fc 10\n}}\n");
    let result = on_small_stack(move || netc::check(&source).map(|m| m.len()));
    assert_eq!(result.ok(), Some(1));
}

/// `model m` whose first layer is written `conv`.
fn with_conv(conv: &str) -> String {
    format!("# café: comments may hold any text\nmodel m {{\n    input 8x8x3\n    {conv}\n    fc 10\n}}\n")
}

#[test]
fn a_byte_order_mark_first_is_skipped() {
    let source = with_conv("conv 3x3 8");
    let bytes = [b"\xEF\xBB\xBF".as_slice(), source.as_bytes()].concat();
    let decoded = netc::syntax::decode(&bytes).unwrap();
    assert_eq!(decoded, source, "the mark is dropped");
    // Given to `check` directly, it is accepted too.
    assert!(netc::check(&format!("\u{feff}{source}")).is_ok());
    // Anywhere else, it is an invisible character, named.
    let (d, rendered) = refused(&with_conv("conv\u{feff} 3x3 8"));
    assert!(d.message.contains("U+FEFF"), "{rendered}");
    assert!(rendered.contains("x.net:4:9"), "{rendered}");
}

#[test]
fn non_ascii_characters_are_named_with_their_code_point() {
    for (conv, column, what) in [
        (
            "conv1é: conv 3x3 8",
            10,
            "non-ASCII letter `é` (U+00E9) in `conv1é`",
        ),
        // A Cyrillic `с`, which looks like the Latin `c`.
        (
            "\u{441}onv 3x3 8",
            5,
            "non-ASCII letter `с` (U+0441) in `сonv`",
        ),
        (
            "conv\u{a0}3x3 8",
            9,
            "no-break space (U+00A0) instead of an ordinary space",
        ),
        (
            "conv 3×3 8",
            11,
            "multiplication sign `×` (U+00D7) instead of the letter x",
        ),
    ] {
        let (d, rendered) = refused(&with_conv(conv));
        assert!(d.message.contains(what), "{rendered}");
        assert!(
            rendered.contains(&format!("x.net:4:{column}")),
            "{rendered}"
        );
        assert!(d.help.is_some(), "{rendered}");
    }
}

#[test]
fn a_file_that_is_not_utf8_says_so_and_where() {
    // `é` in Latin-1 is the single byte 0xE9.
    let bytes = b"model m {\n    input 8x8x3\n    conv1\xE9: conv 3x3 8\n    fc 10\n}\n".to_vec();
    let d = netc::syntax::decode(&bytes).unwrap_err();
    let rendered = d.render("x.net", &String::from_utf8_lossy(&bytes), false);
    assert_eq!(d.message, "the file is not UTF-8 text", "{rendered}");
    assert!(rendered.contains("x.net:3:10"), "{rendered}");
    assert!(rendered.contains("byte 0xE9 is not UTF-8"), "{rendered}");
    assert!(d
        .help
        .as_deref()
        .unwrap()
        .contains("save the file as UTF-8"));
    let utf16 = b"\xFF\xFEm\0o\0".to_vec();
    let d = netc::syntax::decode(&utf16).unwrap_err();
    assert!(d.help.as_deref().unwrap().contains("UTF-16"), "{d:?}");
}
