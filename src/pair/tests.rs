use super::*;

/// Every open connection costs one slab slot: a `Pair` plus the slab
/// entry's tag. Keep it from growing unnoticed (256 bytes on x86_64 in
/// a release build, most of it a tunnel's two flows of at most 64
/// bytes each and what is kept across phases; the idle-pair RSS target
/// is 512 bytes all told). Debug builds of mio keep a selector id beside each
/// socket, 16 bytes more per side once padded.
#[test]
fn a_pair_stays_small() {
    let limit = if cfg!(debug_assertions) { 288 } else { 256 };
    let size = std::mem::size_of::<Pair>();
    assert!(size <= limit, "Pair grew to {size} bytes");
    assert!(
        std::mem::size_of::<Flow>() <= 64,
        "Flow grew to {} bytes",
        std::mem::size_of::<Flow>()
    );
}

#[test]
fn only_legal_moves() {
    assert!(legal("request", "connect"));
    assert!(legal("response", "tunnel"));
    assert!(!legal("tunnel", "request"), "a tunnel never goes back");
    assert!(!legal("linger", "request"));
    assert!(!legal("connect", "tunnel"), "no tunnel without a response");
}
