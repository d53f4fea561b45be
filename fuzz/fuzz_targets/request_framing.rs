//! The request framing scanner (`server/framing.rs`), which finds the request heads carrying
//! both `Content-Length` and `Transfer-Encoding` in the raw bytes of a client connection.
//!
//! The input is what a client sent. However the network cuts it into reads, the scanner must
//! never panic and must come to the same conclusion: the same number of heads, the same
//! conflicting head, off or not, and in a head or not. A client must not be able to slip a
//! smuggling attempt past it by choosing where its TCP segments end.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::reads;
use portcullis_proxy::fuzzing::FramingScanner;

/// What the scanner concluded.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    heads: u64,
    conflicting_head: Option<u64>,
    is_off: bool,
    in_head: bool,
}

fn scan<'a>(reads: impl IntoIterator<Item = &'a [u8]>) -> Verdict {
    let mut scanner = FramingScanner::default();
    for read in reads {
        scanner.feed(read);
        if let Some(head) = scanner.conflicting_head() {
            assert!(
                head >= 1 && head <= scanner.heads(),
                "{head} of {}",
                scanner.heads()
            );
        }
    }
    Verdict {
        heads: scanner.heads(),
        conflicting_head: scanner.conflicting_head(),
        is_off: scanner.is_off(),
        in_head: scanner.in_head(),
    }
}

fuzz_target!(|input: &[u8]| {
    let whole = scan([input]);
    assert_eq!(scan(input.chunks(1)), whole, "one byte at a time");
    assert_eq!(scan(reads(input, 8)), whole, "in reads of varied sizes");
    // Every cut in two, for short inputs: the cut can fall between CR and LF, inside a
    // chunk size, or just before the empty line.
    if input.len() <= 200 {
        for at in 1..input.len() {
            let (first, second) = input.split_at(at);
            assert_eq!(scan([first, second]), whole, "cut at {at}");
        }
    }
});
