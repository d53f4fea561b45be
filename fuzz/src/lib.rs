//! What Portcullis' fuzz targets share.

/// `input` cut into reads of sizes drawn from the input itself, so that every input carries its
/// own cuts (as a network would cut it) and a crash reproduces from the input alone. Most reads
/// are short; one in `long_every`, up to 512 bytes long.
pub fn reads(input: &[u8], long_every: u64) -> Vec<&[u8]> {
    let mut state = input
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64 ^ input.len() as u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        | 1;
    let mut reads = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = if state % long_every.max(1) == 0 {
            1 + (state >> 8) as usize % 512
        } else {
            1 + (state >> 8) as usize % 9
        };
        let (now, later) = rest.split_at(size.min(rest.len()));
        reads.push(now);
        rest = later;
    }
    reads
}
