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
