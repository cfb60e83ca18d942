//! A hostile source for tests: a small HTTP/1.1 server on 127.0.0.1:0 whose every answer the
//! test decides (any status, any header, any body, redirects anywhere), and which records the
//! head of every request it got. The mock API is a well-behaved API with faults; this one
//! misbehaves in ways a real API would never be configured to.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The head of one request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A running server; stops when dropped.
pub struct Hostile {
    base_url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<()>,
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// Starts a server that answers the `n`-th request (0-based, counted across connections) with
/// `handler(&request, n)`.
pub async fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let log = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, handler) = (log.clone(), handler.clone());
            tokio::spawn(async move { serve(stream, &log, &*handler).await });
        }
    });
    Hostile {
        base_url,
        requests,
        task,
    }
}

/// A server on a runtime of its own, for tests that drive the real binary (no async of their
/// own); stops when dropped.
pub struct Serving {
    pub server: Hostile,
    _runtime: tokio::runtime::Runtime,
}

/// [`start`] on a runtime of its own.
pub fn serve_in_background(
    handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
) -> Serving {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start(handler));
    Serving {
        server,
        _runtime: runtime,
    }
}

impl Hostile {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Request {
    /// The value of query parameter `name` in the target, as sent (not decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    /// The value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Reply {
    /// `200` with a JSON body.
    pub fn json(body: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_body(mut self, content_type: &str, body: &str) -> Reply {
        self.headers
            .push(("content-type".to_owned(), content_type.to_owned()));
        self.body = body.as_bytes().to_vec();
        self
    }
}

/// Reads one request head (and its body, when it declares a length), answers, closes.
async fn serve(mut stream: TcpStream, log: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let request = Request {
        method,
        target,
        headers,
    };
    let body_len: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - (head_end + 4);
    while have < body_len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
    let n = {
        let mut log = log.lock().unwrap();
        log.push(request.clone());
        log.len() - 1
    };
    let reply = handler(&request, n);
    let mut out = format!("HTTP/1.1 {} hostile\r\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            reply.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&reply.body);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// The pages a test serves with [`serve_pages`]; tests may change them between runs.
pub type Pages = Arc<Mutex<Vec<serde_json::Value>>>;

/// Serves `pages[N]` as `{"items": [...]}` for `GET <any path>?page=N`, an empty page past them.
pub fn serve_pages(pages: &Pages) -> Serving {
    let pages = pages.clone();
    serve_in_background(move |request, _| {
        let page = request
            .query_param("page")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let items = pages
            .lock()
            .unwrap()
            .get(page)
            .cloned()
            .unwrap_or_else(|| serde_json::json!([]));
        Reply::json(serde_json::json!({ "items": items }))
    })
}
