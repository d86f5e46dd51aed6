//! Realistic Sentry error events (about 8–10 KB of JSON): an exception with a 15–30 frame stack
//! trace carrying context lines and variables, 20–50 breadcrumbs, request, user, tags, contexts
//! and SDK. Values that change with every event are left as fixed-width slots (see
//! [`Slot`]) so a request is built by copying bytes, never by serialising JSON.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A value that differs in every event. Its width is fixed so the item `length` and the
/// pre-compressed pieces around it never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// 32 lowercase hex digits.
    EventId,
    /// RFC 3339 with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
    Timestamp,
    /// Six decimal digits.
    Number,
}

impl Slot {
    pub const ALL: [Slot; 3] = [Slot::EventId, Slot::Timestamp, Slot::Number];

    pub fn width(self) -> usize {
        match self {
            Slot::EventId => 32,
            Slot::Timestamp => 24,
            Slot::Number => 6,
        }
    }

    /// The placeholder written into the JSON, exactly `width()` bytes long.
    pub fn marker(self) -> String {
        let name = match self {
            Slot::EventId => "EVENTID",
            Slot::Timestamp => "TIME",
            Slot::Number => "N",
        };
        let mut marker = format!("<<{name}");
        while marker.len() < self.width() - 2 {
            marker.push('_');
        }
        marker.push_str(">>");
        marker
    }
}

/// Where the event's issue comes from: issue `index` gets its own exception type and in-app
/// frames, so `issues` templates group into exactly `issues` issues.
pub struct EventShape {
    pub issue: usize,
    pub variant: usize,
}

const EXCEPTION_TYPES: [&str; 8] = [
    "ValueError",
    "KeyError",
    "TypeError",
    "ConnectionError",
    "TimeoutError",
    "PermissionError",
    "IntegrityError",
    "ZeroDivisionError",
];
const MODULES: [&str; 10] = [
    "orders", "payments", "users", "catalog", "search", "shipping", "billing", "auth", "cart",
    "reports",
];
const ENVIRONMENTS: [&str; 3] = ["production", "production", "staging"];
const BROWSERS: [&str; 4] = ["Chrome 131.0", "Firefox 133.0", "Safari 18.1", "Edge 131.0"];
const SYSTEMS: [&str; 4] = ["Windows 11", "macOS 15.1", "Ubuntu 24.04", "iOS 18.1"];

/// The event as JSON text with slot markers in place of the varying values. The per-event
/// values sit at the start (id, time) and in the last few keys (request, user, extra), so the
/// large middle compresses as one piece.
pub fn event_json(shape: &EventShape) -> String {
    let mut rng = StdRng::seed_from_u64((shape.issue as u64) << 8 | shape.variant as u64);
    let order = format!("{:06}", rng.gen_range(0..1_000_000));
    let number = Slot::Number.marker();
    let event = json!({
        "event_id": Slot::EventId.marker(),
        "timestamp": Slot::Timestamp.marker(),
        "platform": "python",
        "level": "error",
        "logger": "faultline.loadgen",
        "server_name": format!("web-{}", rng.gen_range(1..=8)),
        "release": format!("shop@1.{}.{}", shape.variant % 3, rng.gen_range(0..5)),
        "environment": ENVIRONMENTS[shape.variant % ENVIRONMENTS.len()],
        "transaction": format!("/api/{}/{{id}}", MODULES[shape.issue % MODULES.len()]),
        "exception": {"values": [exception(shape, &mut rng, &order)]},
        "breadcrumbs": {"values": breadcrumbs(&mut rng, frame_count(shape), &order)},
        "tags": {"feature": MODULES[shape.variant % MODULES.len()], "region": "eu-west-1",
                 "browser": BROWSERS[shape.variant % BROWSERS.len()],
                 "os": SYSTEMS[shape.issue % SYSTEMS.len()]},
        "contexts": contexts(shape),
        "sdk": {"name": "sentry.python", "version": "2.19.0",
                "integrations": ["django", "logging", "stdlib"]},
        "request": request(shape, &number),
        "user": {"id": format!("user-{number}"), "email": format!("customer{number}@example.com"),
                 "ip_address": "203.0.113.7", "username": format!("customer{number}")},
        "extra": {"order_total": format!("{number}.99"), "retries": 2, "queue": "default"},
    });
    serde_json::to_string(&event).expect("an event serialises")
}

/// Between 15 and 30 frames, varying with the issue and variant.
fn frame_count(shape: &EventShape) -> usize {
    15 + (shape.issue * 7 + shape.variant) % 16
}

fn exception(shape: &EventShape, rng: &mut StdRng, order: &str) -> Value {
    let kind = EXCEPTION_TYPES[shape.issue % EXCEPTION_TYPES.len()];
    let frame_count = frame_count(shape);
    let frames: Vec<Value> = (0..frame_count)
        .map(|depth| frame(shape, rng, depth, frame_count, order))
        .collect();
    json!({
        "type": kind,
        "value": format!("could not process order {order}: upstream answered 502"),
        "module": "shop.errors",
        "mechanism": {"type": "django", "handled": false},
        "stacktrace": {"frames": frames},
    })
}

/// How many of the innermost frames are the application's own: they carry context lines and
/// variables, and their functions name the issue so that each issue groups apart.
const IN_APP_FRAMES: usize = 6;

fn frame(shape: &EventShape, rng: &mut StdRng, depth: usize, count: usize, order: &str) -> Value {
    let lineno = rng.gen_range(10..900);
    if depth + IN_APP_FRAMES < count {
        let module = format!("django.core.handlers.l{depth}");
        return json!({
            "filename": format!("{}.py", module.replace('.', "/")),
            "module": module,
            "function": format!("inner_{depth}"),
            "lineno": lineno,
            "in_app": false,
            "context_line": "    return f(request)",
        });
    }
    // Named by distance from the innermost frame: the same in every variant of the issue.
    let step = count - depth;
    let module = format!(
        "shop.{}.views",
        MODULES[(shape.issue + step) % MODULES.len()]
    );
    let function = format!("handle_{}_step{step}", shape.issue);
    json!({
        "filename": format!("{}.py", module.replace('.', "/")),
        "abs_path": format!("/srv/shop/{}.py", module.replace('.', "/")),
        "module": module,
        "function": function,
        "lineno": lineno,
        "in_app": true,
        "pre_context": [format!("    def {function}(self, request, order_id):")],
        "context_line": format!("        result = self.backend.call(order_id, timeout={})", rng.gen_range(1..30)),
        "post_context": ["        return result".to_string()],
        "vars": {"order_id": order, "self": "<OrderView object at 0x7f3a9c2b1d30>",
                 "attempt": rng.gen_range(0..3)},
    })
}

/// Fewer breadcrumbs when the stack is deep, so every event stays near 9 KB.
fn breadcrumbs(rng: &mut StdRng, frame_count: usize, order: &str) -> Vec<Value> {
    let count = 20 + (30 - frame_count) * 2;
    (0..count)
        .map(|i| {
            let timestamp = 1_764_000_000 + i;
            match i % 3 {
                0 => json!({"category": "http", "timestamp": timestamp,
                            "data": {"status_code": 200, "url": format!("/items/{order}")}}),
                1 => json!({"category": "query", "timestamp": timestamp,
                            "message": format!("SELECT * FROM items WHERE id={}", rng.gen_range(1..999))}),
                _ => json!({"category": "cache", "timestamp": timestamp,
                            "message": format!("miss order:{order}")}),
            }
        })
        .collect()
}

fn request(shape: &EventShape, number: &str) -> Value {
    let module = MODULES[shape.issue % MODULES.len()];
    json!({
        "url": format!("https://shop.example.com/api/{module}/{number}"),
        "method": "POST",
        "query_string": format!("expand=lines&page={}", shape.variant + 1),
        "headers": {"Host": "shop.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "Accept": "application/json", "Content-Type": "application/json",
                    "X-Request-Id": format!("req-{number}")},
        "data": {"order_id": number, "items": 3, "coupon": null},
        "env": {"REMOTE_ADDR": "10.0.3.17", "SERVER_NAME": "shop.example.com"},
    })
}

fn contexts(shape: &EventShape) -> Value {
    json!({
        "os": {"name": "Linux", "version": "6.1.0", "build": "6.1.0-28-amd64"},
        "runtime": {"name": "CPython", "version": "3.12.7"},
        "browser": {"name": BROWSERS[shape.variant % BROWSERS.len()]},
        "trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2", "span_id": "fa90fdead5f74052",
                  "op": "http.server", "status": "internal_error"},
        "device": {"arch": "x86_64", "num_cpus": 8, "memory_size": 16_777_216_000u64},
    })
}
