//! `twinsync serve`: one node as a long-running process. The event loop and the senders run
//! on threads of their own (they do blocking work: SQLite, WebAssembly, HTTP posts); the
//! node-to-node protocol and the admin API are served by axum on a small tokio runtime.

mod wake;
pub mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::{Context, Result};
use axum::Router;

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
    let opened = open_node(config)?;
    crate::setup::use_plugin_store(&opened.node)?;
    let node = opened.node.clone();
    let wake = Arc::new(Wake::default());
    let stop = Arc::new(AtomicBool::new(false));
    tracing::info!(
        instance = node.instance(),
        workers = config.workers(),
        allocator = opened.runtime.allocator(),
        data_dir = %config.data_dir().display(),
        "starting"
    );

    let mut threads = Vec::new();
    {
        let (node, wake, stop) = (node.clone(), wake.clone(), stop.clone());
        let workers = config.workers();
        threads.push(
            thread::Builder::new()
                .name("twinsync-events".into())
                .spawn(move || workers::event_loop(node, workers, wake, stop))?,
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
        let (node, wake, stop, clock) = (
            node.clone(),
            wake.clone(),
            stop.clone(),
            opened.clock.clone(),
        );
        threads.push(
            thread::Builder::new()
                .name(format!("twinsync-send-{name}"))
                .spawn(move || workers::sender_loop(node, name, sender, clock, wake, stop))?,
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let served = runtime.block_on(async {
        let handle = axum_server::Handle::new();
        let mut servers = tokio::task::JoinSet::new();
        if let Some(listen) = config.listen {
            let ring = wake.clone();
            let receiver = Arc::new(Receiver {
                node: node.clone(),
                secrets,
                clock: opened.clock.clone(),
                on_accept: Box::new(move || ring.ring()),
            });
            let app = server::router(receiver);
            match &config.tls {
                Some(tls) => {
                    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                        config.resolve(&tls.cert),
                        config.resolve(&tls.key),
                    )
                    .await
                    .context("cannot load the TLS certificate and key")?;
                    let listener = bind(listen, "node-to-node protocol (TLS)")?;
                    let server =
                        axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
                    servers.spawn(async move { server.serve(app.into_make_service()).await });
                }
                None => {
                    let listener = bind(listen, "node-to-node protocol")?;
                    servers.spawn(plain(listener, app, handle.clone()));
                }
            }
        }
        if let (Some(admin_config), Some(token)) = (&config.admin, config.admin_token()?) {
            let ring = wake.clone();
            let app = admin::router(Arc::new(Admin {
                node: node.clone(),
                token,
                on_change: Box::new(move || ring.ring()),
            }));
            let listener = bind(admin_config.listen, "admin API")?;
            servers.spawn(plain(listener, app, handle.clone()));
        }
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("stopping"),
            Some(result) = servers.join_next() => {
                if let Ok(Err(error)) = result {
                    anyhow::bail!("a server stopped: {error}");
                }
            }
        }
        handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        while servers.join_next().await.is_some() {}
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    // Processors still running stop at the next epoch tick; their events stay queued.
    opened.runtime.interrupt_all();
    wake.ring();
    for thread in threads {
        let _ = thread.join();
    }
    tracing::info!("stopped");
    served
}

fn bind(address: SocketAddr, what: &str) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address} for the {what}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(%address, "serving the {what}");
    Ok(listener)
}

async fn plain(
    listener: std::net::TcpListener,
    app: Router,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    axum_server::from_tcp(listener)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
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
