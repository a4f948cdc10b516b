//! Serving the router on a socket with limits against slow and oversized clients, and a
//! graceful shutdown that lets in-flight requests finish.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How long, and for how many bytes, a closing connection reads what its client still sends.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Limits on a connection, before any request reaches the router.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// A client must send its request head within this time (slowloris protection).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); beyond it the answer is 431.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Serves `app` until `shutdown` completes, then stops accepting and waits for the requests in
/// flight to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = builder.http1_only();
    let app = app.layer(axum::middleware::from_fn(close_unless_body_read));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let stream = TokioIo::new(Lingering::new(stream));
                let connection = builder.serve_connection_with_upgrades(stream, service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Marks the answer `Connection: close` when the request's body was not read to its end (an
/// answer that came before the body was looked at: a wrong content type, a missing credential,
/// an oversized body). The server does not keep such a connection — what is left of the body
/// would be read as the next request — and a client that is not told so may put it back in its
/// pool and send its next request on it just as it closes.
async fn close_unless_body_read(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let tracked = request.map(|body| {
        Body::new(ReadToEnd {
            body,
            read: read.clone(),
        })
    });
    let mut response = next.run(tracked).await;
    if !read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd {
    body: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() || self.body.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection that, when the server closes it, first sends its end-of-stream and then reads
/// away what the client is still sending — until the client closes too, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`]. Closing a socket with data unread makes the kernel
/// answer with a reset, and a client still writing a body that the server refused (a 413 for an
/// oversized body) would see its writes fail instead of reading the answer.
struct Lingering {
    stream: TcpStream,
    /// Set once the write half is shut down: the end of the lingering.
    deadline: Option<Pin<Box<Sleep>>>,
    drained: usize,
}

impl Lingering {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            deadline: None,
            drained: 0,
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.deadline.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.deadline = Some(Box::pin(tokio::time::sleep(LINGER_TIME)));
        }
        let mut scratch = [0u8; 8192];
        loop {
            if this.drained >= LINGER_BYTES
                || this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready())
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => this.drained += buf.filled().len(),
                // The client closed (or reset) its end: nothing left to protect.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// `app` served on a loopback port until stopped.
    struct Serving {
        addr: std::net::SocketAddr,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Serving {
        async fn start(app: Router) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve(listener, app, ConnectionLimits::default(), async {
                let _ = stopped.await;
            }));
            Self { addr, stop, task }
        }

        async fn stop(self) {
            self.stop.send(()).unwrap();
            self.task.await.unwrap().unwrap();
        }
    }

    /// The head of the answer on `client`, as text.
    async fn read_head(client: &mut TcpStream) -> String {
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0; 1024];
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            head.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// An answer given without reading the request's body says `Connection: close`, so that
    /// the client does not send its next request on a connection the server is closing; one
    /// given after reading the body, or to a request without one, does not.
    #[tokio::test]
    async fn an_answer_that_left_the_body_unread_closes_the_connection() {
        let app = Router::new()
            .route(
                "/read",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/ignore",
                post(|| async { (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, "no") })
                    .get(|| async { "yes" }),
            );
        let server = Serving::start(app).await;
        let addr = server.addr;
        let with_body = "content-length: 13\r\n\r\ndomain=x.test";
        for (method, path, rest, closes) in [
            ("POST", "/read", with_body, false),
            ("POST", "/ignore", with_body, true),
            ("GET", "/ignore", "\r\n", false),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let request = format!("{method} {path} HTTP/1.1\r\nhost: x\r\n{rest}");
            client.write_all(request.as_bytes()).await.unwrap();
            let head = read_head(&mut client).await;
            let says_close = head
                .lines()
                .any(|l| l.eq_ignore_ascii_case("connection: close"));
            assert_eq!(says_close, closes, "{method} {path}: {head}");
        }
        server.stop().await;
    }

    /// A client still sending its body when the 413 comes reads the whole answer: the server
    /// reads away the rest of the body before it closes, instead of resetting the connection
    /// (a close with data unread sends a reset, and the client's writes then fail).
    #[tokio::test]
    async fn an_oversized_body_is_answered_413_without_resetting_the_connection() {
        let app = Router::new()
            .route(
                "/",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(DefaultBodyLimit::max(1024));
        let server = Serving::start(app).await;
        let addr = server.addr;

        let body = vec![b'a'; 200 * 1024];
        let mut client = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        client.write_all(head.as_bytes()).await.unwrap();
        client.write_all(&body[..4096]).await.unwrap();
        // The answer comes before the body is complete ...
        let head = read_head(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        let mut response = head.into_bytes();
        // ... and the client, unaware of it, goes on sending.
        for chunk in body[4096..].chunks(16 * 1024) {
            client
                .write_all(chunk)
                .await
                .unwrap_or_else(|e| panic!("body write failed: {e}"));
        }
        client
            .read_to_end(&mut response)
            .await
            .unwrap_or_else(|e| panic!("reading to the end of the answer failed: {e}"));
        drop(client);
        server.stop().await;
    }
}
