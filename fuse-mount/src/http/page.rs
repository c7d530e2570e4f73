//! The web page at `/`: one HTML file with its script inline, built into the binary, working
//! only through the JSON API (no front-end build step).

use hyper::StatusCode;

use super::reply::{self, Reply};

const PAGE: &str = include_str!("page.html");

pub fn serve() -> Reply {
    reply::with(StatusCode::OK, "text/html; charset=utf-8", PAGE)
}
