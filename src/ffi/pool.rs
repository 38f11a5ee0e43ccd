//! `ws_buffer_pool`: write buffers shared by many connections.

use super::guard::{self, ffi_value, invalid};
use super::status::ws_status;
use crate::api::BufferPool;

/// A pool of write buffers (gorilla's WriteBufferPool). Connections
/// holding it keep it alive after `ws_buffer_pool_free`. Thread-safe.
pub struct ws_buffer_pool {
    pool: BufferPool,
}

/// A new pool of buffers of `buffer_size` bytes (at least 256). Use one pool
/// per buffer size. NULL (with `ws_last_error`) when `buffer_size` is
/// above 64 MiB.
#[no_mangle]
pub extern "C" fn ws_buffer_pool_new(buffer_size: usize) -> *mut ws_buffer_pool {
    ffi_value!(std::ptr::null_mut(), {
        if buffer_size > crate::api::config::MAX_BUFFER {
            guard::set_last_error("buffer pool sizes above 64 MiB are refused");
            return std::ptr::null_mut();
        }
        guard::register(Box::new(ws_buffer_pool { pool: BufferPool::new(buffer_size) }))
    })
}

/// Releases the caller's reference. NULL and a second free are no-ops.
#[no_mangle]
pub extern "C" fn ws_buffer_pool_free(pool: *mut ws_buffer_pool) {
    ffi_value!((), {
        if guard::unregister(pool) {
            // SAFETY: registered by ws_buffer_pool_new; just left the live set.
            drop(unsafe { Box::from_raw(pool) });
        }
    })
}

/// A clone of the pool behind `p` (NULL gives `None`).
pub(crate) fn pool_clone(p: *const ws_buffer_pool) -> Result<Option<BufferPool>, ws_status> {
    if p.is_null() {
        return Ok(None);
    }
    if (p as usize) % std::mem::align_of::<ws_buffer_pool>() != 0 {
        return Err(invalid("pool is not a ws_buffer_pool"));
    }
    // SAFETY: a non-NULL ws_buffer_pool* is a live handle from ws_buffer_pool_new.
    Ok(Some(unsafe { &*p }.pool.clone()))
}
