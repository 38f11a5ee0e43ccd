//! RFC 6455 section 4 opening handshake, sans-IO, for both sides.
//!
//! Everything here is a pure function over bytes: no sockets, no threads.
//! The semantics follow gorilla/websocket where RFC 6455 leaves room.
//!
//! * [`accept`]: `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` computation.
//! * [`headers`]: header-value helpers shared by both sides and [`HeaderList`].
//! * [`request`]: the server side (parse and validate the client's request,
//!   write the 101 or error response).
//! * [`response`]: the client side (write the request, parse and validate
//!   the server's response).
//! * [`client`]: the client's handshake as a state machine (stages for a
//!   proxy tunnel and TLS before the request), shared by every driver.
//! * [`plain_http`]: plain HTTP requests on the WebSocket port (not
//!   upgrades): routing, body length, the response.
//! * [`url`]: `ws://` / `wss://` URL parsing for the client.

pub mod accept;
pub mod client;
pub mod headers;
pub mod plain_http;
pub mod request;
pub mod response;
pub mod url;

pub use self::accept::{accept_key, generate_client_key, is_valid_client_key, try_generate_client_key, WEBSOCKET_GUID};
pub use self::headers::{
    header_has_token, is_reserved_client_header, is_subprotocol_header, is_token, split_tokens, validate_header,
    GetAll, HeaderList,
};
pub use self::request::{
    is_websocket_upgrade, reason_phrase, requested_subprotocols, same_origin, select_subprotocol, validate_request,
    write_accept_response, write_error_response, Rejection, Request,
};
pub use self::response::{
    offered_subprotocols, validate_response, validate_response_except_extensions, write_request,
    write_request_with_extensions, Response,
};
pub use self::url::{parse_ws_url, WsUrl};

/// Largest accepted request/response head (request or status line, headers
/// and the blank line). Larger heads are rejected: with status 431 on the
/// server side, with an error on the client side.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// Largest accepted number of header fields in a head (server: 431 beyond).
pub const MAX_HEADERS: usize = 64;
