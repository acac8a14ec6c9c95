//! `sealed_session`: `gateway::session::SealedSessionId` (the sealed `Mcp-Session-Id`).
//!
//! Input: `[mode]`, then by `mode % 2`:
//!
//! * 0 — the rest is a token (as text): `open` must not panic, and must give `None` unless the
//!   text is a real sealed token (which random input never is); the same text behind the
//!   `sb1.` prefix too.
//! * 1 — `[flags][t: u64 BE][mutation kind][pos: u16 BE][byte]` then the text fields `c s k u w
//!   o`, each ended by 0xff: claims built from them (`k` present when `flags & 1`) are sealed;
//!   the token must be visible ASCII, `open` must give the same claims back, the foreign vault
//!   and the OAuth-state opener must refuse it, and the token changed by one mutation must not
//!   open at all (any change to a sealed token is tampering).

use switchboard::gateway::session::{SealedSessionId, SessionClaims};
use switchboard::oauth::StateClaims;

use crate::input::Input;
use crate::{foreign_vault, mutate, vault};

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 2 {
        0 => {
            let text = String::from_utf8_lossy(input.rest()).into_owned();
            assert_eq!(
                SealedSessionId::open(vault(), &text),
                None,
                "opened: {text:?}"
            );
            let prefixed = format!("sb1.{text}");
            assert_eq!(
                SealedSessionId::open(vault(), &prefixed),
                None,
                "opened: {prefixed:?}"
            );
        }
        _ => round_trip(&mut input),
    }
}

fn round_trip(input: &mut Input<'_>) {
    let flags = input.byte();
    let t = input.u64();
    let (kind, pos, byte) = (input.byte(), input.u16(), input.byte());
    let claims = SessionClaims {
        c: input.field(),
        s: input.field(),
        k: {
            let k = input.field();
            (flags & 1 == 1).then_some(k)
        },
        u: input.field(),
        w: input.field(),
        o: input.field(),
        t,
    };
    let token = SealedSessionId::seal(vault(), &claims);
    assert!(
        token.starts_with("sb1.") && token.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "a token that is not a visible-ASCII sb1. token: {token:?}"
    );
    assert_eq!(
        SealedSessionId::open(vault(), &token).as_ref(),
        Some(&claims),
        "the round trip lost or changed the claims"
    );
    assert_eq!(SealedSessionId::open(foreign_vault(), &token), None);
    let bare = &token["sb1.".len()..];
    assert!(
        StateClaims::open(vault(), bare).is_none(),
        "a session token opened as an OAuth state"
    );
    let mutated = mutate(&token, kind, pos, byte);
    if mutated != token {
        assert_eq!(
            SealedSessionId::open(vault(), &mutated),
            None,
            "a tampered token opened: {token:?} -> {mutated:?}"
        );
    }
}
