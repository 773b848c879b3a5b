//! Compile tests of `#[consul_lock]`: every supported shape compiles (`tests/ui/pass`), and
//! every misuse is a compile error with a helpful message at the right place
//! (`tests/ui/fail`, one case per error).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
