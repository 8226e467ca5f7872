//! actix-web 4 hello server: /plaintext and /json as TechEmpower asks, one
//! worker. usage: actix-hello PORT

use actix_web::{get, http::header, App, HttpResponse, HttpServer};

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

#[get("/plaintext")]
async fn plaintext() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::SERVER, "actix"))
        .content_type("text/plain")
        .body("Hello, World!")
}

#[get("/json")]
async fn json() -> HttpResponse {
    let body = serde_json::to_vec(&Message { message: "Hello, World!" }).unwrap();
    HttpResponse::Ok()
        .insert_header((header::SERVER, "actix"))
        .content_type("application/json")
        .body(body)
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(19162);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().service(plaintext).service(json))
            .workers(1)
            .bind(("127.0.0.1", port))?
            .run()
            .await
    })
}
