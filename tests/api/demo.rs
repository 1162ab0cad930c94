//! The agent console (`demo`, contract §6): on the public listener only when
//! turned on. The page itself is tested in a browser (tests/js/test/console.test.js).

use crate::helpers::spawn_app;

const CONSOLE_PATHS: [&str; 4] = [
    "/demo/",
    "/demo/console.js",
    "/demo/console.css",
    "/demo/socket.io.min.js",
];

#[tokio::test]
async fn the_console_is_not_found_when_demo_is_off() {
    let app = spawn_app(&[]).await;
    for path in CONSOLE_PATHS.into_iter().chain(["/demo"]) {
        let res = app.http.get(app.public_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_console_and_the_stock_client_bundle_are_served_when_demo_is_on() {
    let app = spawn_app(&["--demo", "true"]).await;
    for path in CONSOLE_PATHS {
        let res = app.http.get(app.public_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let page = app.http.get(app.public_url("/demo/")).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="socket.io.min.js""#), "{html}");
    assert!(html.contains("<textarea"), "{html}");
    // The bundle npm installed (demo/package-lock.json), not a copy of ours.
    let bundle = app
        .http
        .get(app.public_url("/demo/socket.io.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(bundle.text().await.unwrap().starts_with("/*!\n * Socket.IO v4.8."));
    // `/demo` keeps its query on the way to `/demo/`.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = bare.get(app.public_url("/demo?ticket=42")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/demo/?ticket=42");
    // Nothing else appears on the public listener.
    for path in ["/demo/../v1/stats", "/demo/index.html", "/v1/stats"] {
        let res = app.http.get(app.public_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    app.shutdown().await.unwrap();
}
