//! The two WebSocket flavours a link runs over — warp's (accepted) and tokio-tungstenite's
//! (dialled) — reduced to one stream of [`WireIn`] and one sink of [`WireOut`].
//!
//! Each binary message is one Noise message. Text messages are not part of the protocol;
//! WebSocket pings are answered by the libraries and invisible here.

use futures_util::{Sink, SinkExt, Stream, StreamExt};

use super::handshake::MAX_NOISE_MESSAGE;

/// Something that arrived on the connection.
#[derive(Debug)]
pub enum WireIn {
    Binary(Vec<u8>),
    /// The other side closed, with its reason text when it gave one.
    Closed(Option<String>),
    /// Text or other non-protocol message.
    Unexpected,
    Error(String),
}

/// Something to put on the connection.
#[derive(Debug)]
pub enum WireOut {
    Binary(Vec<u8>),
    /// Close with a short reason the other side can show (never anything secret).
    Close(String),
}

/// Largest WebSocket message accepted: one Noise message.
pub const MAX_WIRE_MESSAGE: usize = MAX_NOISE_MESSAGE;

pub type BoxIn = std::pin::Pin<Box<dyn Stream<Item = WireIn> + Send>>;
pub type BoxOut = std::pin::Pin<Box<dyn Sink<WireOut, Error = String> + Send>>;

pub fn from_warp(ws: warp::ws::WebSocket) -> (BoxOut, BoxIn) {
    let (sink, stream) = ws.split();
    let sink = sink
        .sink_map_err(|e| e.to_string())
        .with(|out: WireOut| async move {
            Ok::<_, String>(match out {
                WireOut::Binary(b) => warp::ws::Message::binary(b),
                WireOut::Close(reason) => warp::ws::Message::close_with(1000u16, reason),
            })
        });
    let stream = stream.map(|m| match m {
        Ok(m) if m.is_binary() => WireIn::Binary(m.into_bytes().to_vec()),
        Ok(m) if m.is_close() => WireIn::Closed(
            m.close_frame()
                .map(|(_, r)| r.to_string())
                .filter(|r| !r.is_empty()),
        ),
        Ok(m) if m.is_ping() || m.is_pong() => WireIn::Unexpected,
        Ok(_) => WireIn::Unexpected,
        Err(e) => WireIn::Error(e.to_string()),
    });
    (Box::pin(sink), Box::pin(stream))
}

pub fn from_tungstenite<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> (BoxOut, BoxIn)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;
    let (sink, stream) = ws.split();
    let sink = sink
        .sink_map_err(|e| e.to_string())
        .with(|out: WireOut| async move {
            Ok::<_, String>(match out {
                WireOut::Binary(b) => Message::binary(b),
                WireOut::Close(reason) => Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: reason.into(),
                })),
            })
        });
    let stream = stream.map(|m| match m {
        Ok(Message::Binary(b)) => WireIn::Binary(b.to_vec()),
        Ok(Message::Close(frame)) => WireIn::Closed(
            frame
                .map(|f| f.reason.to_string())
                .filter(|r| !r.is_empty()),
        ),
        Ok(_) => WireIn::Unexpected,
        Err(e) => WireIn::Error(e.to_string()),
    });
    (Box::pin(sink), Box::pin(stream))
}
