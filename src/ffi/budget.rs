//! The memory budget in C: the process-wide one, and an upgrader's own.

use super::guard::{self, ffi_status, ffi_value};
use super::server::{up_ref, with_up, ws_upgrader};
use super::status::*;
use crate::api::budget::MemoryBudget;
use crate::error::Error;

fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Sets the process-wide memory budget in bytes (0 = none): what all
/// connections without a budget of their own (see
/// `ws_upgrader_set_memory_budget`) may hold together for input not yet
/// handed to the application (messages being assembled or inflated,
/// compressed input not inflated yet, unparsed input). Past 7/8 of it
/// only connections below their fair share (7/8 of it / connections
/// holding memory) get more, up to the budget; the others are not read
/// (TCP pushes back on their peers) and are closed with 1009 (or 1008)
/// when their budget wait ends (`ws_upgrader_set_budget_wait`). Loop and
/// blocking connections, servers and clients; not `ws_session`. Default: 1 GiB, or a quarter of the machine's
/// memory if that is less. Applies at once to running connections. Any
/// thread.
#[no_mangle]
pub extern "C" fn ws_set_memory_budget(bytes: u64) -> ws_status {
    ffi_status!({
        MemoryBudget::process().set_limit(to_usize(bytes));
        WS_OK
    })
}

/// The process-wide memory budget in bytes (0 = none). Any thread.
#[no_mangle]
pub extern "C" fn ws_memory_budget() -> u64 {
    ffi_value!(0, { MemoryBudget::process().limit() as u64 })
}

/// Bytes the connections on the process-wide budget hold now. Any thread.
#[no_mangle]
pub extern "C" fn ws_memory_budget_used() -> u64 {
    ffi_value!(0, { MemoryBudget::process().used() as u64 })
}

/// Gives the connections accepted through `up` (with `ws_listen`,
/// `ws_loop_listen`, `ws_upgrader_upgrade_fd`) a memory budget of their
/// own, `bytes` (0 = none), shared by all of them instead of the
/// process-wide one. Listeners and loops copy the upgrader's settings when
/// they start; once the upgrader has its own budget, calling this again
/// changes that budget's limit in place, for every listener and loop
/// started with it since. The budget is shared, not owned by the caller:
/// it lives as long as the upgrader or any connection on it. NULL `up`:
/// `WS_ERR_INVALID_ARGUMENT`. Any thread (as every upgrader setter).
#[no_mangle]
pub extern "C" fn ws_upgrader_set_memory_budget(up: *mut ws_upgrader, bytes: u64) -> ws_status {
    ffi_status!({
        with_up(up, |u| {
            match &u.conn.budget {
                Some(b) => b.set_limit(to_usize(bytes)),
                None => u.conn.budget = Some(MemoryBudget::new(to_usize(bytes))),
            }
            Ok(())
        })
    })
}

/// Bytes the connections of `up`'s budget hold now: its own budget's, or
/// the process-wide one's when it has none. 0 when `up` is NULL. Any
/// thread.
#[no_mangle]
pub extern "C" fn ws_upgrader_memory_budget_used(up: *const ws_upgrader) -> u64 {
    ffi_value!(0, {
        let Ok(u) = up_ref(up) else { return 0 };
        match u.up.read() {
            Ok(g) => g.conn.memory_budget().used() as u64,
            Err(_) => {
                guard::fail(&Error::poisoned());
                0
            }
        }
    })
}

/// How long an accepted connection refused memory by its budget has to get
/// its message done, counted from the first refusal, before it is closed
/// (1009 when what it holds is mostly its current message, else 1008), in
/// milliseconds; negative = no limit, 0 = at the first refusal. Default
/// 10000. Refused, a connection is not read (TCP pushes back on its peer).
/// Applies to connections accepted after the call. NULL `up`:
/// `WS_ERR_INVALID_ARGUMENT`. Any thread.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_budget_wait(up: *mut ws_upgrader, timeout_ms: i64) -> ws_status {
    ffi_status!({
        with_up(up, |u| {
            u.conn.budget_wait = super::timeout::loop_timeout(timeout_ms);
            Ok(())
        })
    })
}
