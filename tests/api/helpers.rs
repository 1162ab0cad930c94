//! Starts the real server in-process on random loopback ports.

use std::net::SocketAddr;

use switchboard::app::{self, Heartbeat, Listeners};
use switchboard::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts a node with the defaults plus `args` (flags, as on the command line).
pub async fn spawn_app(args: &[&str]) -> TestApp {
    spawn_app_with(args, Heartbeat::default()).await
}

/// [`spawn_app`] with another Engine.IO heartbeat (short, to test its timing).
pub async fn spawn_app_with(args: &[&str], heartbeat: Heartbeat) -> TestApp {
    // The environment is left out: a developer's SWITCHBOARD_* variables must not change a test.
    let args = std::iter::once("switchboard").chain(args.iter().copied());
    let config = Config::from_args_and_env(args, |_| None).expect("valid config");
    let listeners = Listeners {
        public: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        internal: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let public = listeners.public.local_addr().unwrap();
    let internal = listeners.internal.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app::run_with(config, listeners, heartbeat, async move {
        let _ = stopped.await;
    }));
    TestApp {
        public,
        internal,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn internal_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.internal)
    }

    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// `GET /v1/stats` on the internal listener (no token configured).
    pub async fn stats(&self) -> serde_json::Value {
        let res = self.http.get(self.internal_url("/v1/stats")).send().await.unwrap();
        res.json().await.unwrap()
    }

    /// Asks the node to shut down and waits until `run` returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.expect("run does not panic")
    }
}
