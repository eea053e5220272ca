//! `twinsync serve`: one node as a long-running process. The event loop and the senders run
//! on threads of their own (they do blocking work: SQLite, WebAssembly, HTTP posts); the
//! node-to-node protocol and the admin API are served by axum on a small tokio runtime.

mod lock;
mod peers;
pub(crate) mod supervise;
mod wake;
pub mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use axum::Router;

pub(crate) use lock::DataDirLock;
pub use peers::{Link, Peers};
pub use wake::Wake;

use crate::admin::{self, Admin};
use crate::config::NodeConfig;
use crate::setup::open_node;
use crate::sync::Flow;
use crate::transport::client::Sender;
use crate::transport::server::{self, Receiver};

/// Run the node described by `config` until Ctrl-C or SIGTERM.
pub fn serve(config: &NodeConfig) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Held until the node stops: a second `serve` on the same data directory would process
    // the same queue twice.
    let _lock = lock::DataDirLock::take(&config.data_dir())?;
    let opened = open_node(config)?;
    crate::setup::use_plugin_store(&opened.node)?;
    let node = opened.node.clone();
    // The event loop sleeps on `wake`, the senders on `outbox`: a received message or a
    // tracker change wakes only the event loop, and its new messages only the senders.
    let wake = Arc::new(Wake::default());
    let outbox = Arc::new(Wake::default());
    let stop = Arc::new(AtomicBool::new(false));
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let peers = Arc::new(Peers::default());
    tracing::info!(
        instance = node.instance(),
        workers = config.workers(),
        allocator = opened.runtime.allocator(),
        data_dir = %config.data_dir().display(),
        "starting"
    );

    let supervisor = Arc::new(supervise::Supervisor::default());
    let mut threads = Vec::new();
    {
        let (node, wake, outbox, stop) = (node.clone(), wake.clone(), outbox.clone(), stop.clone());
        let workers = config.workers();
        let poll = config.poll_tracker();
        threads.push(
            supervisor.spawn("the event loop".into(), stop.clone(), move || {
                workers::event_loop_with(node, workers, wake, outbox, stop, poll)
            })?,
        );
    }
    if let Some(every) = config.verify_interval() {
        let (node, wake, stop) = (node.clone(), wake.clone(), stop.clone());
        threads.push(
            supervisor.spawn("the verify loop".into(), stop.clone(), move || {
                verify_loop(node, every, wake, stop)
            })?,
        );
    }
    // The tenants of the registry (DATA_DIR/tenants.db, or the PostgreSQL database of
    // `[store] url` with their states), run beside this node; the registry is applied
    // every second (the CLI may write it) and at once after an admin change.
    let mut host = crate::embed::HostConfig::new(config.data_dir());
    host.postgres = crate::setup::postgres(config)?;
    if let Some(workers) = config.tenants.workers {
        host.workers = workers.max(1);
    }
    host.workers_per_tenant = config.tenants.workers_per_tenant.max(1);
    let tenants = Arc::new(crate::tenants::Tenants::open(
        host,
        node.clone(),
        opened.clock.clone(),
        std::time::Duration::from_secs(config.tenants.retry_after_secs.max(1)),
    )?);
    tenants.reconcile()?;
    {
        let (tenants, stop) = (tenants.clone(), stop.clone());
        threads.push(
            supervisor.spawn("the tenant registry".into(), stop.clone(), move || {
                reconcile_loop(&tenants, &stop)
            })?,
        );
    }
    let mut secrets = HashMap::new();
    for connection in &config.connections {
        let name = connection.name.get_ref().clone();
        let secret = config.secret(connection)?;
        if connection.direction != Flow::SendOnly {
            secrets.insert(name.clone(), secret.clone());
        }
        let Some(url) = &connection.remote_url else {
            continue;
        };
        if connection.direction == Flow::ReceiveOnly {
            continue;
        }
        let ca =
            match &connection.remote_ca {
                Some(path) => Some(std::fs::read(config.resolve(path)).with_context(|| {
                    format!("connection `{name}`: cannot read {}", path.display())
                })?),
                None => None,
            };
        let sender = Sender::new(&name, url, secret, ca.as_deref())?;
        let (node, outbox, stop, clock, peers) = (
            node.clone(),
            outbox.clone(),
            stop.clone(),
            opened.clock.clone(),
            peers.clone(),
        );
        threads.push(supervisor.spawn(
            format!("the sender of connection `{name}`"),
            stop.clone(),
            move || workers::sender_loop(node, name, sender, clock, outbox, stop, peers),
        )?);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let served = runtime.block_on(async {
        let handle = axum_server::Handle::new();
        let mut servers = tokio::task::JoinSet::new();
        // With [tls], both listeners speak TLS: the admin token must not cross the
        // network in clear either.
        let tls = match &config.tls {
            Some(tls) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(
                    config.resolve(&tls.cert),
                    config.resolve(&tls.key),
                )
                .await
                .context("cannot load the TLS certificate and key")?,
            ),
            None => None,
        };
        if let Some(listen) = config.listen {
            let ring = wake.clone();
            let receiver = Arc::new(Receiver {
                node: node.clone(),
                secrets,
                clock: opened.clock.clone(),
                on_accept: Box::new(move || ring.ring()),
            });
            let mut app = server::router(receiver)
                .merge(crate::tenants::routing::router(tenants.clone()));
            if let Some(secret) = config.webhook_secret()? {
                let ring = wake.clone();
                app = app.merge(crate::webhooks::router(Arc::new(crate::webhooks::Webhooks::new(
                    node.clone(),
                    secret,
                    opened.clock.clone(),
                    Box::new(move || ring.ring()),
                ))));
                tracing::info!(
                    poll_tracker = config.poll_tracker(),
                    "taking change notifications on {}",
                    crate::webhooks::CHANGES_PATH
                );
            }
            let listener = bind(listen, "node-to-node protocol", tls.is_some())?;
            servers.spawn(serve_on(listener, app, tls.clone(), handle.clone()));
        }
        if let (Some(admin_config), Some(token)) = (&config.admin, config.admin_token()?) {
            // What an operator does may make work for either loop.
            let mut app = admin::router(Arc::new(Admin {
                node: node.clone(),
                token: token.clone(),
                on_change: Arc::new(ring_both(&wake, &outbox)),
                tenants: Some(tenants.clone()),
            }));
            if let Some(console) = config.console.as_ref().filter(|c| c.enabled) {
                app = app.merge(crate::console::router(Arc::new(crate::console::Console {
                    host: Arc::new(crate::console::View {
                        node: node.clone(),
                        peers: peers.clone(),
                        on_change: Box::new(ring_both(&wake, &outbox)),
                    }),
                    token,
                    secure_cookie: console.secure_cookie,
                    sessions: Default::default(),
                    tenants: Some(tenants.clone()),
                })));
                tracing::info!(address = %admin_config.listen, "serving the console under /console");
            }
            let listener = bind(admin_config.listen, "admin API", tls.is_some())?;
            servers.spawn(serve_on(listener, app, tls.clone(), handle.clone()));
        }
        let outcome = tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
            why = supervisor.failed() => Err(anyhow::anyhow!("{why}")),
            Some(result) = servers.join_next() => match result {
                Ok(Err(error)) => Err(anyhow::anyhow!("a server stopped: {error}")),
                _ => Err(anyhow::anyhow!("a server stopped")),
            },
        };
        // The listeners stop taking requests first: nothing is accepted that the loops
        // would not process.
        handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        while servers.join_next().await.is_some() {}
        outcome
    });
    stop.store(true, Ordering::Relaxed);
    // Processors still running stop at the next epoch tick; their events stay queued.
    opened.runtime.interrupt_all();
    ring_both(&wake, &outbox)();
    for thread in threads {
        let _ = thread.join();
    }
    tenants.stop();
    tracing::info!("stopped");
    served
}

/// Ring the event loop's bell and the senders': for what may make work for either.
fn ring_both(wake: &Arc<Wake>, outbox: &Arc<Wake>) -> impl Fn() + Send + Sync + 'static {
    let (wake, outbox) = (wake.clone(), outbox.clone());
    move || {
        wake.ring();
        outbox.ring();
    }
}

/// Apply the tenant registry every second: what the CLI wrote while serve runs.
fn reconcile_loop(tenants: &crate::tenants::Tenants, stop: &AtomicBool) {
    let step = std::time::Duration::from_millis(100);
    let mut waited = std::time::Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < std::time::Duration::from_secs(1) {
            continue;
        }
        waited = std::time::Duration::ZERO;
        if let Err(error) = tenants.reconcile() {
            tracing::warn!("cannot apply the tenant registry: {error:#}");
        }
    }
}

/// Reconciliation now and then (see `Node::verify`): a divergence the events missed is
/// found and repaired, never left silent.
pub(crate) fn verify_loop(
    node: Arc<crate::sync::Node>,
    every: std::time::Duration,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
) {
    let step = std::time::Duration::from_millis(200);
    let mut waited = std::time::Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < every {
            continue;
        }
        waited = std::time::Duration::ZERO;
        match node.verify(None) {
            Ok(report) => {
                tracing::info!(
                    checked = report.checked,
                    busy = report.busy,
                    fixed = report.fixed,
                    errors = report.errors,
                    "verified the twins"
                );
                if report.fixed > 0 {
                    wake.ring();
                }
            }
            Err(error) => tracing::warn!("verify failed: {error:#}"),
        }
    }
}

fn bind(address: SocketAddr, what: &str, tls: bool) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address} for the {what}"))?;
    listener.set_nonblocking(true)?;
    let over = if tls { "HTTPS" } else { "HTTP" };
    tracing::info!(%address, "serving the {what} over {over}");
    Ok(listener)
}

/// Serve `app` on `listener`, over TLS when there is a TLS configuration.
async fn serve_on(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            axum_server::from_tcp_rustls(listener, tls)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
