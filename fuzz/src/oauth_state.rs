//! `oauth_state`: `oauth::StateClaims` (the sealed OAuth `state` parameter).
//!
//! Input: `[mode]`, then by `mode % 2`:
//!
//! * 0 — the rest is a `state` (as text): `open` must not panic and must give `None`.
//! * 1 — `[flags][exp: u64 BE][mutation kind][pos: u16 BE][byte]` then the text fields `nonce
//!   user workspace org connector name title return_url verifier issuer token_endpoint
//!   client_id resource redirect_uri`, each ended by 0xff (`flags` bit 0: admin; bits 1, 2, 3:
//!   title, return_url, resource present). The claims are sealed; the state must be unpadded
//!   URL-safe base64; `open` must give equal claims back (or `None` when the state is longer
//!   than the 8 KiB `open` accepts); the foreign vault and the session opener must refuse it;
//!   and the state changed by one mutation must not open.

use serde_json::Value;
use switchboard::gateway::session::SealedSessionId;
use switchboard::oauth::StateClaims;

use crate::input::Input;
use crate::{B64_URL, foreign_vault, mutate, vault};

/// The longest state `StateClaims::open` looks at.
const MAX_STATE: usize = 8 * 1024;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 2 {
        0 => {
            let text = String::from_utf8_lossy(input.rest()).into_owned();
            assert!(
                StateClaims::open(vault(), &text).is_none(),
                "opened: {text:?}"
            );
        }
        _ => round_trip(&mut input),
    }
}

/// `StateClaims` has no `PartialEq`: compare what it serializes to.
fn json(c: &StateClaims) -> Value {
    serde_json::to_value(c).expect("claims serialize")
}

fn round_trip(input: &mut Input<'_>) {
    let flags = input.byte();
    let exp = input.u64() as i64;
    let (kind, pos, byte) = (input.byte(), input.u16(), input.byte());
    let opt = |bit: u8, input: &mut Input<'_>| {
        let v = input.field();
        (flags & (1 << bit) != 0).then_some(v)
    };
    let nonce = input.field();
    let user = input.field();
    let workspace = input.field();
    let org = input.field();
    let connector = input.field();
    let name = input.field();
    let title = opt(1, input);
    let return_url = opt(2, input);
    let verifier = input.field();
    let issuer = input.field();
    let token_endpoint = input.field();
    let client_id = input.field();
    let resource = opt(3, input);
    let redirect_uri = input.field();
    let claims = StateClaims {
        nonce,
        exp,
        user,
        workspace,
        org,
        admin: flags & 1 == 1,
        connector,
        name,
        title,
        return_url,
        verifier,
        issuer,
        token_endpoint,
        client_id,
        resource,
        redirect_uri,
    };
    let state = claims.seal(vault());
    assert!(
        state.bytes().all(|b| B64_URL.contains(&b)),
        "a state that is not unpadded URL-safe base64: {state:?}"
    );
    let opened = StateClaims::open(vault(), &state);
    if state.len() <= MAX_STATE {
        let opened = opened.expect("a state this vault sealed must open");
        assert_eq!(
            json(&opened),
            json(&claims),
            "the round trip changed the claims"
        );
    } else {
        assert!(opened.is_none(), "a state over {MAX_STATE} bytes opened");
    }
    assert!(StateClaims::open(foreign_vault(), &state).is_none());
    assert_eq!(
        SealedSessionId::open(vault(), &format!("sb1.{state}")),
        None,
        "an OAuth state opened as a session id"
    );
    let mutated = mutate(&state, kind, pos, byte);
    if mutated != state {
        assert!(
            StateClaims::open(vault(), &mutated).is_none(),
            "a tampered state opened: {state:?} -> {mutated:?}"
        );
    }
}
